-- title: Local administrators who are not the device's JumpCloud user
-- description: Active local administrator accounts on a device whose name is not that of a JumpCloud user bound to the device (System Insights users).
-- key: device_id, username
select d.id as device_id, d.display_name as device, l.username, l.uid
from jumpcloud.device_local_users l
join jumpcloud.devices d on d.id = l.device_id
where l.admin
  and not coalesce(l.suspended, false)
  and not exists (
    select 1 from jumpcloud.device_users du
    join jumpcloud.users u on u.id = du.user_id
    where du.device_id = l.device_id and u.username = l.username
  )
order by device, username
