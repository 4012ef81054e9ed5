//! Helpers shared by the fuzz targets: result invariants, structure-aware mutations,
//! hostile-model builders and the quantize pipeline driver.

pub mod checks;
pub mod hostile;
pub mod mutate;
pub mod pipeline;
