//! Helpers shared by the fuzz targets: result invariants, structure-aware mutations,
//! hostile-model builders, the quantize pipeline driver and the config analysis driver.

pub mod checks;
pub mod config_analysis;
pub mod hostile;
pub mod mutate;
pub mod pipeline;
