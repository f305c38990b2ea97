-- title: Changes in the last 24 hours
-- description: every row added, removed or changed in any JumpCloud table since yesterday, newest first
select at, table_name, op, key, changed, source
from changes.all
where at >= now() - interval '1 day'
order by at desc, table_name, key
