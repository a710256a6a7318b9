//! The error of [`to_value`](super::to_value) / [`from_value`](super::from_value):
//! a message and the path of the field it is about.

use std::fmt;

/// A value that does not fit the type asked for (or a type that has no
/// Python form), and the path of the field where that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerdeError {
    /// Outermost segment last: segments are pushed as the error travels up.
    reversed_path: Vec<Segment>,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A struct field or a `str` dict key.
    Field(String),
    /// A dict key that is not a `str`, as its Python repr.
    Key(String),
    /// A position in a sequence.
    Index(usize),
}

impl SerdeError {
    pub(crate) fn new(message: impl fmt::Display) -> Self {
        SerdeError {
            reversed_path: Vec::new(),
            message: message.to_string(),
        }
    }

    /// A container nested deeper than [`MAX_NESTING`](super::MAX_NESTING).
    pub(crate) fn too_deep() -> Self {
        SerdeError::new(format_args!(
            "nested deeper than {} levels, the most to_value / from_value go",
            super::MAX_NESTING
        ))
    }

    /// "expected {expected}, found {found}".
    pub(crate) fn mismatch(expected: &str, found: &str) -> Self {
        SerdeError::new(format_args!("expected {expected}, found {found}"))
    }

    /// The same error one level down, in the field or `str` key `field` (for a
    /// value stored under a key of a larger dict).
    pub fn within_field(mut self, field: &str) -> Self {
        self.reversed_path.push(Segment::Field(field.to_owned()));
        self
    }

    pub(crate) fn within_key(mut self, key: &crate::Value) -> Self {
        self.reversed_path.push(match key.as_str() {
            Some(field) => Segment::Field(field.to_owned()),
            None => Segment::Key(key.to_string()),
        });
        self
    }

    pub(crate) fn within_index(mut self, index: usize) -> Self {
        self.reversed_path.push(Segment::Index(index));
        self
    }

    /// Where the problem is, like `params.scan[3].gain` (empty at the top level).
    pub fn path(&self) -> String {
        let mut path = String::new();
        for segment in self.reversed_path.iter().rev() {
            match segment {
                Segment::Field(field) if path.is_empty() => path.push_str(field),
                Segment::Field(field) => {
                    path.push('.');
                    path.push_str(field);
                }
                Segment::Key(repr) => path.push_str(&format!("[{repr}]")),
                Segment::Index(index) => path.push_str(&format!("[{index}]")),
            }
        }
        path
    }

    /// What was wrong, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reversed_path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path(), self.message)
        }
    }
}

impl std::error::Error for SerdeError {}

impl serde::ser::Error for SerdeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        SerdeError::new(message)
    }
}

impl serde::de::Error for SerdeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        SerdeError::new(message)
    }

    /// Says what was expected first, as the rest of the project's errors do.
    fn invalid_type(found: serde::de::Unexpected<'_>, expected: &dyn serde::de::Expected) -> Self {
        SerdeError::new(format_args!("expected {expected}, found {found}"))
    }

    fn invalid_value(found: serde::de::Unexpected<'_>, expected: &dyn serde::de::Expected) -> Self {
        SerdeError::new(format_args!("expected {expected}, found {found}"))
    }

    fn invalid_length(len: usize, expected: &dyn serde::de::Expected) -> Self {
        SerdeError::new(format_args!("expected {expected}, found {len} items"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_reads_outermost_first() {
        let error = SerdeError::mismatch("float", "str")
            .within_field("gain")
            .within_index(3)
            .within_key(&crate::Value::Int(7))
            .within_field("params");
        assert_eq!(error.path(), "params[7][3].gain");
        assert_eq!(
            error.to_string(),
            "params[7][3].gain: expected float, found str"
        );
        assert_eq!(SerdeError::new("top").to_string(), "top");
    }
}
