-- title: Users suspended or unsuspended this week
-- description: people whose suspension changed in the last 7 days, with when it was seen and how
select email, displayname, suspended as now_suspended, _at as seen_at, _source as how
from changes.users
where _op = 'changed'
  and _changed like '%"suspended"%'
  and _at >= now() - interval '7 days'
order by _at desc, email
