-- title: Activity by invoking service
-- description: Calls grouped by the AWS service that made them on a principal's behalf (userIdentity.invokedBy,
--   such as cloudformation.amazonaws.com), against calls made directly, with how many of them changed something; busiest first.
SELECT
    COALESCE(useridentity.invokedby, '(direct call)') AS invoked_by,
    COUNT(*) AS calls,
    COUNT(*) FILTER (WHERE readonly = false) AS write_calls,
    COUNT(DISTINCT eventname) AS distinct_calls,
    MIN(eventtime) AS first_call,
    MAX(eventtime) AS last_call
FROM $EDS_ID
GROUP BY COALESCE(useridentity.invokedby, '(direct call)')
ORDER BY calls DESC, invoked_by
