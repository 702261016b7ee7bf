//! Accuracy and sampling tests of the conditional Poisson distribution, in one binary.

mod distribution {
    pub mod reference;

    mod autograd;
    mod backends;
    mod enumeration;
    mod errors;
    mod large_n;
    mod sampling;
}
