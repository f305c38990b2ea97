-- title: Devices whose boot volume is not encrypted
-- description: macOS and Linux devices whose volume mounted at / is not encrypted, and Windows devices whose C: drive BitLocker does not protect, as System Insights reports them.
-- key: device_id
select d.id as device_id, d.display_name as device, d.os, m.device as boot_volume, e.encryption_status as status
from jumpcloud.device_mounts m
join jumpcloud.device_disk_encryption e on e.device_id = m.device_id and e.name = m.device
join jumpcloud.devices d on d.id = m.device_id
where m.path = '/' and coalesce(e.encrypted, 0) = 0
union all
select d.id, d.display_name, d.os, b.drive_letter, 'not protected'
from jumpcloud.device_bitlocker b
join jumpcloud.devices d on d.id = b.device_id
where b.drive_letter = 'C:' and coalesce(b.protection_status, 0) <> 1
order by device, device_id
