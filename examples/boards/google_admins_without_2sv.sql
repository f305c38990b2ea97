-- title: Google admins without 2-step verification
-- description: A super or delegated admin signing in with a password alone.
select primary_email, name_full_name, is_admin, is_delegated_admin, is_enforced_in2_sv, last_login_time
from google.users
where (is_admin or is_delegated_admin) and not is_enrolled_in2_sv and not suspended
order by primary_email
