-- title: Console sign-ins without MFA
-- description: Every console sign-in made without multi-factor authentication, successful or not, oldest first.
--   Written additionaleventdata['MFAUsed'] rather than Lake's usual element_at(additionaleventdata, 'MFAUsed'):
--   DataFusion's element_at on a map returns a list, which cannot be compared with 'No'.
SELECT
    eventtime,
    useridentity.type AS identity_type,
    useridentity.arn AS principal_arn,
    sourceipaddress,
    responseelements['ConsoleLogin'] AS outcome,
    eventid
FROM $EDS_ID
WHERE eventsource = 'signin.amazonaws.com'
    AND eventname = 'ConsoleLogin'
    AND additionaleventdata['MFAUsed'] = 'No'
ORDER BY eventtime, eventid
