//! The dataset build (in progress).
