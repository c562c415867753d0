//! The labelled data sets behind training and the accuracy evaluation, read from local files.

pub mod bbc;
pub mod class_labels;
pub mod fashion_mnist;
pub mod image_folder;
pub mod split;
