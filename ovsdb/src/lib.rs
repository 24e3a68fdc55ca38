//! OVSDB engine (RFC 7047) with redb persistence.
