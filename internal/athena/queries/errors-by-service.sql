-- Errors of the last 7 days by service and error code
SELECT eventsource, errorcode, count(*) AS events
FROM errors
WHERE day >= replace(CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar), '-', '/')
GROUP BY eventsource, errorcode
ORDER BY events DESC, eventsource, errorcode
LIMIT 20
