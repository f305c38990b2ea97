-- title: Software inventory
-- description: Each application (macOS) and program (Windows) by version, with the number of devices it is installed on.
-- key: name, version
select name, version, count(distinct device_id) as devices
from (
  select bundle_name as name, bundle_short_version as version, device_id from jumpcloud.device_apps
  union all
  select name, version, device_id from jumpcloud.device_programs
) software
group by name, version
order by devices desc, name, version
