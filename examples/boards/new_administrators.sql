-- title: New administrators
-- description: administrators who appeared since jcsql first fetched the list, with their role and MFA
select email, role_name, enable_multi_factor, _at as seen_at
from changes.administrators
where _op = 'added'
order by _at desc, email
