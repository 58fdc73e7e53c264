-- title: Resources deleted, and by whom
-- description: Every successful call whose name starts with Delete: who made it, the resource's ARN when CloudTrail recorded one,
--   and the request's parameters, which name the resource when it did not; oldest first.
--   Written resources[1]['arn'] (the first resource) rather than Lake's CROSS JOIN UNNEST(resources) or element_at(resources, 1).arn:
--   OpenTrail's DataFusion can neither unnest a column in a join nor read a field with a dot after a subscript.
SELECT
    eventtime,
    useridentity.arn AS deleted_by,
    eventsource,
    eventname,
    resources[1]['arn'] AS resource_arn,
    requestparameters,
    eventid
FROM $EDS_ID
WHERE eventname LIKE 'Delete%'
    AND errorcode IS NULL
ORDER BY eventtime, eventid
