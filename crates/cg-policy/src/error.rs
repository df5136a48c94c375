//! Errors of the policy crate, in the Cedar style: one enum, lower-case messages, user input in
//! backticks, and miette diagnostics with source spans that name the file.

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

/// Anything that stops a policy from loading or a setting from applying.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum PolicyError {
    /// One or more policy files are invalid (parse, validation, or annotation problems).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<InvalidPolicy>),
    /// The policy config is malformed.
    #[error("invalid policy config `{file}`: {message}")]
    Config {
        /// The config file (or `--set` text).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set name=value` override is wrong.
    #[error("invalid setting `{assignment}`: {message}")]
    Setting {
        /// The text given.
        assignment: String,
        /// What is wrong.
        message: String,
    },
    /// No bundled policy has that name.
    #[error("unknown policy `{name}`; bundled policies: {known}")]
    #[diagnostic(help("pass a bundled name or the path of a `.cedar` file"))]
    UnknownPolicy {
        /// The name given.
        name: String,
        /// The bundled names.
        known: String,
    },
    /// A policy file could not be read.
    #[error("cannot read policy file `{path}`")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl PolicyError {
    pub(crate) fn config(file: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Config {
            file: file.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn setting(assignment: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Setting {
            assignment: assignment.to_owned(),
            message: message.into(),
        }
    }

    /// Whether the error is the caller's usage mistake (a bad `--set` or policy name).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PolicyError::Setting { .. } | PolicyError::UnknownPolicy { .. }
        )
    }
}

/// A policy that failed to load, with every problem found.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("policy `{name}` is invalid: {} problem(s)", problems.len())]
pub struct InvalidPolicy {
    name: String,
    #[related]
    problems: Vec<Problem>,
}

impl InvalidPolicy {
    pub(crate) fn error(name: &str, problems: Vec<Problem>) -> PolicyError {
        PolicyError::Invalid(Box::new(InvalidPolicy {
            name: name.to_owned(),
            problems,
        }))
    }

    /// The problems.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

/// One problem at a place in one file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct Problem {
    file: String,
    message: String,
    span: Option<SourceSpan>,
    label: String,
    help: Option<String>,
    source_code: NamedSource<String>,
}

impl Problem {
    /// A problem from any Cedar diagnostic, re-anchored on `file` whose text is `text`.
    pub(crate) fn from_cedar(file: &str, text: &str, d: &dyn Diagnostic, prefix: &str) -> Problem {
        let first = d.labels().and_then(|mut l| l.next());
        let (span, label) = match first {
            Some(l) => (Some(*l.inner()), l.label().unwrap_or("here").to_owned()),
            None => (None, String::new()),
        };
        let mut message = format!("{prefix}{d}");
        if let Some(code) = d.code() {
            message = format!("{message} [{code}]");
        }
        Problem {
            file: file.to_owned(),
            message,
            span,
            label,
            help: d.help().map(|h| h.to_string()),
            source_code: NamedSource::new(file, text.to_owned()),
        }
    }

    /// A problem of consentgate's own (e.g. a missing `@reason`) at `span`.
    pub(crate) fn new(
        file: &str,
        text: &str,
        message: String,
        span: Option<SourceSpan>,
        help: Option<String>,
    ) -> Problem {
        Problem {
            file: file.to_owned(),
            message,
            span,
            label: "here".to_owned(),
            help,
            source_code: NamedSource::new(file, text.to_owned()),
        }
    }

    /// The file.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `(offset, length)` of the span in the file, if known.
    pub fn span(&self) -> Option<(usize, usize)> {
        self.span.map(|s| (s.offset(), s.len()))
    }
}

impl Diagnostic for Problem {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source_code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.label.clone()),
            span,
        ))))
    }
}
