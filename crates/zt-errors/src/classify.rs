//! Which code an internal error is: the one place where error types map onto
//! codes, as rustls maps its errors onto alert descriptions.

use std::error::Error as StdError;

use zt_error_codes::ErrorCode;

use crate::coded::CodedError;

/// A function that recognizes an error type and names its code.
///
/// Crates with their own error types export one, for example to map an audit
/// write failure onto [`ErrorCode::AuditWriteFailed`].
pub type Classifier = fn(&(dyn StdError + 'static)) -> Option<ErrorCode>;

/// Walks the chain from the outermost error inward; at each link it asks the
/// custom classifiers first, then the built-in ones. The first answer wins, so
/// the most specific context, which is outermost, decides. Nothing recognized
/// is [`ErrorCode::Internal`].
pub(crate) fn classify(error: &(dyn StdError + 'static), custom: &[Classifier]) -> ErrorCode {
    let mut link = Some(error);
    while let Some(current) = link {
        if let Some(code) = custom.iter().find_map(|classifier| classifier(current)) {
            return code;
        }
        if let Some(code) = builtin(current) {
            return code;
        }
        link = current.source();
    }
    ErrorCode::Internal
}

fn builtin(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    if let Some(coded) = error.downcast_ref::<CodedError>() {
        return Some(coded.code());
    }
    if let Some(problem) = error.downcast_ref::<crate::Problem>() {
        return Some(problem.code());
    }
    #[cfg(feature = "diesel")]
    if let Some(code) = crate::diesel_map::classify(error) {
        return Some(code);
    }
    None
}

/// Finds the field messages marked safe anywhere in the chain.
pub(crate) fn safe_fields(error: &(dyn StdError + 'static)) -> Vec<crate::FieldMessage> {
    let mut link = Some(error);
    while let Some(current) = link {
        if let Some(coded) = current.downcast_ref::<CodedError>()
            && !coded.safe_fields().is_empty()
        {
            return coded.safe_fields().to_vec();
        }
        link = current.source();
    }
    Vec::new()
}
