//! The HTTP/1.1 protocol, sans-IO: parsing request heads, building response
//! heads, and the pure rules of RFC 9110 (ranges, conditional requests,
//! content negotiation). Nothing here touches a socket or a file.

pub mod chunked;
pub mod conditional;
pub mod date;
pub mod encoding;
pub mod errors;
pub mod range;
pub mod request;
pub mod response;
