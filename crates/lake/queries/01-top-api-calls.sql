-- title: Top API calls
-- description: The 25 API calls made most often, with the service that answered them, most frequent first.
SELECT
    eventsource,
    eventname,
    COUNT(*) AS calls
FROM $EDS_ID
GROUP BY eventsource, eventname
ORDER BY calls DESC, eventsource, eventname
LIMIT 25
