//! vhost-user ports.
