-- title: Administrators without MFA
-- description: active administrators who can sign in to the Admin Portal without a second factor (the critical check of JumpCloud's own audit)
select email, role_name, totp_enrolled, api_key_set, created
from jumpcloud.administrators
where not coalesce(enable_multi_factor, false)
  and not coalesce(suspended, false)
order by email
