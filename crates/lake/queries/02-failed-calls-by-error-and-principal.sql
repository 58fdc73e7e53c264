-- title: Failed calls by error code and principal
-- description: How often each principal got each error code, most frequent first;
--   the principal's ARN is empty for AWS services, whose identity type says who they are.
SELECT
    errorcode,
    useridentity.type AS identity_type,
    useridentity.arn AS principal_arn,
    COUNT(*) AS failures
FROM $EDS_ID
WHERE errorcode IS NOT NULL
GROUP BY errorcode, useridentity.type, useridentity.arn
ORDER BY failures DESC, errorcode, identity_type NULLS LAST, principal_arn NULLS LAST
