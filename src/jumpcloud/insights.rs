//! System Insights (osquery on each device) as tables: nine `device_*` tables from v2
//! `GET /systeminsights/TABLE` (DESIGN §3e), and how such a table is fetched.
//!
//! The routes answer bare arrays with no total count, up to 10,000 records a page. A fetch of
//! the whole table sorts on a unique key (`system_id` first) so offset pages are stable, asks
//! for the first page, then estimates how many pages are left from how far into the sorted
//! device ids that page reached, and asks for a little less than that estimate at once; it
//! repeats until a page comes back short. The request count stays at the minimum (a page too
//! many only when the estimate overshoots) while the pages run concurrently.

use futures::{StreamExt, TryStreamExt};

use crate::error::{JcsqlError, Result};
use crate::table::Kind::{self, *};
use crate::table::decode::{PageRows, TablePage};
use crate::table::{Column, Source, TableDef};

use super::client::{JumpCloudClient, Listing};

/// The spec's maximum `limit` on System Insights routes.
pub const INSIGHTS_PAGE_SIZE: u64 = 10_000;

/// How many ids one `filter=system_id:in:…` names (a URL stays well under 8 KB).
const IDS_PER_FILTER: usize = 100;

/// A System Insights table: `path` is its route (`/v2/systeminsights/ROUTE`), `spec` the spec's
/// definition of its records, `fields` that definition's fields besides `system_id` and
/// `collection_time`. Its pages are sorted on its key (see [`sort_of`]).
fn insight(
    name: &'static str,
    path: &'static str,
    spec: &'static str,
    description: &'static str,
    key: &'static [&'static str],
    fields: &[(&'static str, Kind, &'static str)],
) -> TableDef {
    let mut columns = vec![
        Column::new("system_id", Reference, "The device (a devices.id).").named("device_id").refers_to("devices"),
        Column::new("collection_time", Timestamp, "When the agent collected the row.").named("collected_at"),
    ];
    // The API's own `device_id` (bitlocker_info: a volume path) yields the name to the device.
    columns.extend(fields.iter().map(|(path, kind, description)| match *path {
        "device_id" => Column::new(path, *kind, description).named("volume_device_id"),
        _ => Column::new(path, *kind, description),
    }));
    let primary = if key.is_empty() { Some("device_id") } else { None };
    let key: &'static [&'static str] = if key.is_empty() { &["device_id"] } else { key };
    TableDef::new(name, description, Source::Insights { path }, primary, key, columns)
        .with_spec(spec)
        .with_volatile(&["collected_at"])
}

/// The `sort` of a table's pages: its key, a unique one, in the API's field names
/// (`system_id,path`), so offset pages are stable.
fn sort_of(def: &TableDef) -> String {
    let fields: Vec<&str> =
        def.key.iter().map(|k| if *k == crate::table::INSIGHTS_DEVICE_COLUMN { "system_id" } else { k }).collect();
    fields.join(",")
}

pub fn tables() -> Vec<TableDef> {
    vec![
        insight(
            "device_os_versions",
            "/v2/systeminsights/os_version",
            "system-insights-os-version",
            "Each device's operating system as osquery reports it (System Insights os_version).",
            &[],
            &[
                ("name", Text, "OS name (macOS, Microsoft Windows 11 Pro, Ubuntu)."),
                ("version", Text, "Full version."),
                ("major", Int, "Major version."),
                ("minor", Int, "Minor version."),
                ("patch", Int, "Patch version."),
                ("build", Text, "Build."),
                ("platform", Text, "Platform (darwin, windows, ubuntu)."),
                ("platform_like", Text, "Platform family."),
                ("codename", Text, "Release code name."),
                ("install_date", Text, "When the OS was installed, as the agent sends it."),
            ],
        ),
        insight(
            "device_system_info",
            "/v2/systeminsights/system_info",
            "system-insights-system-info",
            "Each device's hardware (System Insights system_info).",
            &[],
            &[
                ("computer_name", Text, "Computer name."),
                ("hostname", Text, "Host name."),
                ("local_hostname", Text, "Local host name."),
                ("cpu_brand", Text, "CPU brand string."),
                ("cpu_type", Text, "CPU type."),
                ("cpu_subtype", Text, "CPU subtype."),
                ("cpu_microcode", Text, "CPU microcode version."),
                ("cpu_logical_cores", Int, "Logical cores."),
                ("cpu_physical_cores", Int, "Physical cores."),
                ("physical_memory", Text, "Memory in bytes (text, as the API sends it)."),
                ("hardware_vendor", Text, "Hardware vendor."),
                ("hardware_model", Text, "Hardware model."),
                ("hardware_version", Text, "Hardware version."),
                ("hardware_serial", Text, "Hardware serial number."),
                ("uuid", Text, "Hardware UUID."),
            ],
        ),
        insight(
            "device_apps",
            "/v2/systeminsights/apps",
            "system-insights-apps",
            "Applications installed on macOS devices (System Insights apps).",
            &["device_id", "path"],
            &[
                ("name", Text, "Bundle file name (Safari.app)."),
                ("path", Text, "Where the bundle is."),
                ("bundle_name", Text, "Name of the application."),
                ("display_name", Text, "Display name."),
                ("bundle_short_version", Text, "Version shown to people."),
                ("bundle_version", Text, "Build version."),
                ("bundle_identifier", Text, "Bundle identifier (com.apple.Safari)."),
                ("bundle_executable", Text, "Executable name."),
                ("bundle_package_type", Text, "Package type."),
                ("category", Text, "App Store category."),
                ("copyright", Text, "Copyright notice."),
                ("info_string", Text, "Info string."),
                ("minimum_system_version", Text, "Lowest macOS version it runs on."),
                ("compiler", Text, "Compiler."),
                ("development_region", Text, "Development region."),
                ("element", Text, "Element flag."),
                ("environment", Text, "Environment."),
                ("applescript_enabled", Text, "AppleScript enabled ('0' or '1')."),
                ("last_opened_time", Float, "When last opened (seconds since 1970; -1 never)."),
            ],
        ),
        insight(
            "device_programs",
            "/v2/systeminsights/programs",
            "system-insights-programs",
            "Programs installed on Windows devices (System Insights programs).",
            &["device_id", "name", "version"],
            &[
                ("name", Text, "Program name."),
                ("version", Text, "Version."),
                ("publisher", Text, "Publisher."),
                ("install_date", Text, "Install date, as the agent sends it (20240131)."),
                ("install_location", Text, "Install folder."),
                ("install_source", Text, "Installer source."),
                ("identifying_number", Text, "Product code."),
                ("language", Text, "Language."),
                ("uninstall_string", Text, "Uninstall command."),
            ],
        ),
        insight(
            "device_disk_encryption",
            "/v2/systeminsights/disk_encryption",
            "system-insights-disk-encryption",
            "Encryption of each volume of macOS and Linux devices (System Insights disk_encryption).",
            &["device_id", "name"],
            &[
                ("name", Text, "Volume device (/dev/disk1s1)."),
                ("encrypted", Int, "1 when encrypted."),
                ("encryption_status", Text, "encrypted, not encrypted or undefined."),
                ("type", Text, "Encryption type (APFS Encryption, LUKS)."),
                ("uid", Text, "User who unlocks it."),
                ("user_uuid", Text, "That user's UUID."),
                ("uuid", Text, "Volume UUID."),
            ],
        ),
        insight(
            "device_bitlocker",
            "/v2/systeminsights/bitlocker_info",
            "system-insights-bitlocker-info",
            "BitLocker state of each drive of Windows devices (System Insights bitlocker_info).",
            &["device_id", "drive_letter"],
            &[
                ("device_id", Text, "The volume's device path (the API's own `device_id`)."),
                ("drive_letter", Text, "Drive letter (C:)."),
                ("protection_status", Int, "1 when BitLocker protects the drive."),
                ("conversion_status", Int, "1 when fully encrypted."),
                ("percentage_encrypted", Int, "Percent encrypted."),
                ("encryption_method", Text, "Method (XTS_AES_128, None)."),
                ("persistent_volume_id", Text, "Volume id."),
            ],
        ),
        insight(
            "device_chrome_extensions",
            "/v2/systeminsights/chrome_extensions",
            "system-insights-chrome-extensions",
            "Chrome extensions of each device's users (System Insights chrome_extensions).",
            &["device_id", "uid", "path"],
            &[
                ("uid", Text, "Local user who installed it."),
                ("name", Text, "Extension name."),
                ("identifier", Text, "Extension id."),
                ("version", Text, "Version."),
                ("author", Text, "Author."),
                ("description", Text, "Description."),
                ("locale", Text, "Default locale."),
                ("path", Text, "Where it is installed."),
                ("permissions", Text, "Permissions it asks for."),
                ("persistent", Int, "1 when it runs in the background."),
                ("update_url", Text, "Update URL."),
            ],
        ),
        insight(
            "device_local_users",
            "/v2/systeminsights/users",
            "system-insights-users",
            "Local accounts on each device, with whether they are administrators (System Insights users).",
            &["device_id", "uid"],
            &[
                ("uid", Text, "User id on the device."),
                ("username", Text, "Account name."),
                ("description", Text, "Full name or description."),
                ("admin", Bool, "The account is a local administrator."),
                ("managed", Bool, "The account is managed by JumpCloud."),
                ("ad_managed", Bool, "The account comes from Active Directory."),
                ("real_user", Bool, "A person's account, not a service account."),
                ("suspended", Bool, "The account is suspended."),
                ("type", Text, "Account type."),
                ("directory", Text, "Home directory."),
                ("shell", Text, "Login shell."),
                ("gid", Text, "Primary group id."),
                ("uid_signed", Text, "Signed user id."),
                ("gid_signed", Text, "Signed group id."),
                ("uuid", Text, "Account UUID or SID."),
                ("last_login", Text, "Last login, as the agent sends it."),
            ],
        ),
        insight(
            "device_mounts",
            "/v2/systeminsights/mounts",
            "system-insights-mounts",
            "Mounted volumes of macOS and Linux devices: which device is mounted at / (System Insights mounts).",
            &["device_id", "path"],
            &[
                ("path", Text, "Mount point (/ is the boot volume)."),
                ("device", Text, "Mounted device (/dev/disk1s1)."),
                ("device_alias", Text, "Device alias."),
                ("type", Text, "File system type."),
                ("flags", Text, "Mount flags."),
                ("blocks", Text, "Blocks (text, as the API sends it)."),
                ("blocks_size", Text, "Block size."),
                ("blocks_free", Text, "Free blocks."),
                ("blocks_available", Text, "Available blocks."),
                ("inodes", Text, "Inodes."),
                ("inodes_free", Text, "Free inodes."),
            ],
        ),
    ]
}

/// A fetched page: its rows, its record count and the device id of its last record.
struct Fetched {
    rows: PageRows,
    records: u64,
    requests: u64,
    bytes: u64,
}

impl Fetched {
    fn last_device(&self) -> Option<String> {
        use datafusion::arrow::array::{Array, AsArray};
        let ids = self.rows.batch.column_by_name("device_id")?.as_string_opt::<i32>()?;
        (!ids.is_empty() && ids.is_valid(ids.len() - 1)).then(|| ids.value(ids.len() - 1).to_string())
    }
}

fn add(listing: &mut Listing<PageRows>, page: Fetched) {
    listing.pages.push(page.rows);
    listing.requests += page.requests;
    listing.bytes += page.bytes;
}

/// Every record of the insights table `def` at `path` (`devices`: the ids in the devices table),
/// or those of the `only` devices, in pages of `page_size` (at most [`INSIGHTS_PAGE_SIZE`]);
/// `on_page` hears each page's record count.
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    client: &JumpCloudClient,
    def: &TableDef,
    path: &str,
    devices: &[String],
    only: Option<&[String]>,
    page_size: u64,
    fetched_at_us: i64,
    on_page: &(dyn Fn(u64) + Send + Sync),
) -> Result<Listing<PageRows>> {
    let page_size = page_size.clamp(1, INSIGHTS_PAGE_SIZE);
    let in_flight = client.config().max_in_flight.max(1);
    let decoder = TablePage { def, parent: None, fetched_at_us };
    let sort = sort_of(def);
    let page = |filter: Option<String>, skip: u64| {
        let (decoder, sort) = (&decoder, &sort);
        async move {
            let mut query: Vec<(&str, String)> = vec![("sort", sort.clone())];
            if let Some(f) = filter {
                query.push(("filter", f));
            }
            let (rows, records, requests, bytes) = client.insights_page(path, &query, skip, page_size, decoder).await?;
            on_page(records);
            Ok::<_, JcsqlError>(Fetched { rows, records, requests, bytes })
        }
    };
    let mut listing = Listing::default();
    if let Some(ids) = only {
        // A page chain per batch of devices: usually one page each.
        let filters: Vec<String> =
            ids.chunks(IDS_PER_FILTER).map(|chunk| format!("system_id:in:{}", chunk.join("|"))).collect();
        let chains: Vec<Vec<Fetched>> = futures::stream::iter(filters)
            .map(|filter| {
                let page = &page;
                async move {
                    let mut chain = Vec::new();
                    let mut skip = 0;
                    loop {
                        let p = page(Some(filter.clone()), skip).await?;
                        let records = p.records;
                        chain.push(p);
                        if records < page_size {
                            return Ok::<_, JcsqlError>(chain);
                        }
                        skip += records;
                    }
                }
            })
            .buffer_unordered(in_flight)
            .try_collect()
            .await?;
        for p in chains.into_iter().flatten() {
            add(&mut listing, p);
        }
        return Ok(listing);
    }
    let mut sorted: Vec<&str> = devices.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut next = 0u64;
    loop {
        let probe = page(None, next * page_size).await?;
        next += 1;
        let (records, mut last_device) = (probe.records, probe.last_device());
        add(&mut listing, probe);
        if records < page_size {
            return Ok(listing);
        }
        loop {
            // The pages left, from the share of the sorted device ids the pages so far reached;
            // a little less is asked for at once, so a page too many is rare.
            // The last device may go on into the next page: half of it counts as reached.
            let reached = last_device.as_deref().map_or(0, |d| sorted.partition_point(|id| *id < d)) as f64 + 0.5;
            let estimate = (next as f64 * sorted.len().max(1) as f64 / reached).ceil();
            let mut wave = ((estimate - next as f64) * 0.9).floor().max(0.0) as u64;
            // Few devices seen tell little (one device's rows may fill a small page): grow
            // the waves by doubling until the pages so far span enough devices.
            if reached < 100.0 {
                wave = wave.min(2 * next);
            }
            if wave == 0 {
                break;
            }
            let mut pages: Vec<(u64, Fetched)> = futures::stream::iter(next..next + wave)
                .map(|i| {
                    let page = &page;
                    async move { Ok::<_, JcsqlError>((i, page(None, i * page_size).await?)) }
                })
                .buffer_unordered(in_flight)
                .try_collect()
                .await?;
            next += wave;
            pages.sort_by_key(|(i, _)| *i);
            let short = pages.iter().any(|(_, p)| p.records < page_size);
            if let Some((_, p)) = pages.last() {
                last_device = p.last_device().or(last_device);
            }
            for (_, p) in pages {
                add(&mut listing, p);
            }
            if short {
                return Ok(listing);
            }
        }
    }
}
