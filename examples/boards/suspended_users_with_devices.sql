-- title: Suspended users still bound to a device
-- description: A suspended account that can still log in to a laptop is an open door.
select u.email, u.displayname, d.display_name as device, d.last_contact, du.sudo_enabled
from jumpcloud.users u
join jumpcloud.device_users du on du.user_id = u.id
join jumpcloud.devices d on d.id = du.device_id
where u.suspended
order by u.email, d.display_name
