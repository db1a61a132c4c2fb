//! The listen address as people write it: an IP address with a port, or a host name with a
//! port (`localhost:8080`), in the `listen` setting, `--listen` and `LIVEHUB_LISTEN`.

use std::net::{SocketAddr, ToSocketAddrs};

/// `127.0.0.1:8080`, `[::1]:8080`, or a host name such as `localhost:8080`, resolved now: its
/// first IPv4 address, else its first address (a listener binds one address). The error is a
/// sentence saying what is wrong.
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected HOST:PORT, such as 127.0.0.1:8080 or localhost:8080".into());
    };
    if host.is_empty() {
        return Err("the host is missing; use 0.0.0.0:PORT for every interface or 127.0.0.1:PORT".into());
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("the port {port:?} is not a number from 0 to 65535"));
    }
    let addrs: Vec<SocketAddr> =
        text.to_socket_addrs().map_err(|e| format!("cannot resolve the host {host:?}: {e}"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("the host {host:?} has no address"))
}

/// `listen` in the TOML file, through [`listen_address`].
pub(crate) fn deserialize_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    listen_address(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_host_names_are_accepted() {
        assert_eq!(listen_address("127.0.0.1:8080"), Ok(SocketAddr::from(([127, 0, 0, 1], 8080))));
        assert_eq!(listen_address(" [::1]:9 "), Ok("[::1]:9".parse().expect("addr")));
        let local = listen_address("localhost:8080").expect("localhost resolves");
        assert!(local.ip().is_loopback() && local.port() == 8080, "{local}");
        assert!(listen_address("localhost").expect_err("no port").contains("HOST:PORT"));
        assert!(listen_address("localhost:http").expect_err("bad port").contains("port"));
        assert!(listen_address(":8080").expect_err("no host").contains("host"));
        assert!(listen_address("no-such-host.invalid:80").expect_err("unresolvable").contains("resolve"));
    }

    #[test]
    fn the_file_takes_host_names_too() {
        let config = crate::Config::from_toml("listen = \"localhost:9\"").expect("parses");
        assert!(config.listen.ip().is_loopback() && config.listen.port() == 9, "{}", config.listen);
        let error = crate::Config::from_toml("listen = \"localhost\"").expect_err("no port");
        assert!(error.to_string().contains("HOST:PORT"), "{error}");
    }
}
