-- Who was denied what in the last 7 days
SELECT useridentity.arn AS principal, eventsource, eventname, count(*) AS denied
FROM errors
WHERE day >= replace(CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar), '-', '/')
  AND errorcode IN ('AccessDenied', 'AccessDeniedException', 'Client.UnauthorizedOperation')
GROUP BY useridentity.arn, eventsource, eventname
ORDER BY denied DESC, principal, eventsource, eventname
LIMIT 20
