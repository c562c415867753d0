//! The labelled data sets behind training and the accuracy evaluation, read from local files.

pub mod bbc;
pub mod fashion_mnist;
pub mod split;
