-- title: Data events on one S3 bucket
-- description: Who read and wrote the objects of one bucket, per principal and call: calls, distinct objects, failures and when; busiest first.
--   Written requestparameters['bucketName'] rather than Lake's usual element_at(requestparameters, 'bucketName'):
--   DataFusion's element_at on a map returns a list, which cannot be compared with a name.
-- parameter: BUCKET_NAME the bucket's name (not its ARN)
SELECT
    useridentity.arn AS principal_arn,
    eventname,
    COUNT(*) AS calls,
    COUNT(DISTINCT requestparameters['key']) AS objects,
    COUNT(errorcode) AS failures,
    MIN(eventtime) AS first_call,
    MAX(eventtime) AS last_call
FROM $EDS_ID
WHERE eventcategory = 'Data'
    AND eventsource = 's3.amazonaws.com'
    AND requestparameters['bucketName'] = '{{BUCKET_NAME}}'
GROUP BY useridentity.arn, eventname
ORDER BY calls DESC, principal_arn NULLS LAST, eventname
