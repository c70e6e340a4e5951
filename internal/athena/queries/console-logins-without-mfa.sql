-- Console sign-ins of the last 30 days made without MFA
SELECT eventtime, account, useridentity.arn AS principal, sourceipaddress, errormessage
FROM console_logins
WHERE day >= replace(CAST(CAST(current_date - INTERVAL '30' DAY AS date) AS varchar), '-', '/')
  AND additionaleventdata LIKE '%"MFAUsed":"No"%'
ORDER BY eventtime DESC
LIMIT 100
