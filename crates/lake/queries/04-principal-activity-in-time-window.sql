-- title: Everything one principal did in a time window
-- description: Every call made by one principal (its ARN) from the start of a time window (inclusive) to its end (exclusive), oldest first.
-- parameter: PRINCIPAL_ARN the principal's ARN, as userIdentity.arn records it (arn:aws:iam::111122223333:user/alice)
-- parameter: START_TIME the window's start, UTC, written 2024-01-31 08:00:00
-- parameter: END_TIME the window's end, UTC, written 2024-01-31 18:00:00
SELECT
    eventtime,
    eventsource,
    eventname,
    awsregion,
    sourceipaddress,
    errorcode,
    eventid
FROM $EDS_ID
WHERE useridentity.arn = '{{PRINCIPAL_ARN}}'
    AND eventtime >= '{{START_TIME}}'
    AND eventtime < '{{END_TIME}}'
ORDER BY eventtime, eventid
