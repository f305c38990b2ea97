-- title: Empty device groups
-- description: device groups with no device in them (policies and commands bound to them reach nothing)
select g.name, g.membership_method, g.description
from jumpcloud.device_groups g
where not exists (
  select 1 from jumpcloud.device_group_members m where m.group_id = g.id
)
order by g.name
