-- title: Changes by each administrator in the last 7 days
-- description: what each administrator changed this week, by kind of change
select initiated_by_email as administrator,
       event_type,
       count(*) as changes,
       count(distinct resource_id) as objects,
       max(timestamp) as last_change
from jumpcloud.directory_events
where initiated_by_type = 'admin'
  and changes is not null
  and timestamp >= now() - interval '7 days'
group by 1, 2
order by 1, 2
