-- What the root user of any account did in the last 30 days
SELECT eventtime, account, region, eventsource, eventname, sourceipaddress, errorcode
FROM events
WHERE day >= replace(CAST(CAST(current_date - INTERVAL '30' DAY AS date) AS varchar), '-', '/')
  AND useridentity.type = 'Root'
ORDER BY eventtime DESC
LIMIT 100
