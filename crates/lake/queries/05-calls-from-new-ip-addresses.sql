-- title: Calls from an IP address not seen in the previous 7 days
-- description: Every call whose source IP address made no call in the 7 days before it (a first sighting, or a return after a week away), oldest first;
--   calls that AWS services make on their own (source *.amazonaws.com or AWS Internal) are left out.
SELECT
    eventtime,
    sourceipaddress,
    principal_arn,
    eventsource,
    eventname,
    eventid
FROM (
    SELECT
        eventtime,
        sourceipaddress,
        useridentity.arn AS principal_arn,
        eventsource,
        eventname,
        eventid,
        -- The address's calls from 7 days before this one up to just before it, so that
        -- calls from one address in the same instant are all first sightings. A window
        -- rather than NOT EXISTS (same address, earlier time): one pass over the events.
        COUNT(*) OVER (
            PARTITION BY sourceipaddress
            ORDER BY eventtime
            RANGE BETWEEN INTERVAL '7' DAY PRECEDING AND INTERVAL '0.001' SECOND PRECEDING
        ) AS calls_in_previous_7_days
    FROM $EDS_ID
    WHERE sourceipaddress NOT LIKE '%amazonaws.com'
        AND sourceipaddress <> 'AWS Internal'
)
WHERE calls_in_previous_7_days = 0
ORDER BY eventtime, eventid
