//! Rewrites `examples/data/` (the HR roster and device inventory that join to the default demo
//! org): `cargo run --example demo_data`.

use jcsql::jumpcloud::simulator::demo_data::{hr_csv, inventory_json};
use jcsql::jumpcloud::simulator::{Org, OrgSpec};

fn main() -> std::io::Result<()> {
    let org = Org::generate(&OrgSpec::new(jcsql::cli::DEMO_USERS, jcsql::cli::DEMO_SEED));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("hr.csv"), hr_csv(&org))?;
    std::fs::write(dir.join("inventory.json"), inventory_json(&org))?;
    println!("wrote {}", dir.display());
    Ok(())
}
