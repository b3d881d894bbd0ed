//! Consumer check: zt-errors without its `diesel` feature.

/// Turns any error into a client-safe problem.
pub fn sanitize(error: &(dyn std::error::Error + 'static)) -> zt_errors::Problem {
    zt_errors::Sanitizer::new().sanitize(error)
}
