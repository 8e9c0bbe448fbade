//! The zenoh session configuration of a mirror: explicit endpoints, loopback by default, no
//! multicast discovery unless asked; everything else (TLS, authentication, transport tuning)
//! from an optional zenoh configuration file.

use std::path::PathBuf;

use crate::MirrorError;

/// Where the publisher listens when told nothing: loopback only.
pub const DEFAULT_LISTEN: &str = "tcp/127.0.0.1:7447";
/// Where the follower connects when told nothing: the default publisher on this machine.
pub const DEFAULT_CONNECT: &str = "tcp/127.0.0.1:7447";

/// How a zenoh session of the mirror is configured.
///
/// The endpoints given here always replace the configuration file's `listen/endpoints` and
/// `connect/endpoints` (zenoh's own default in peer mode is to listen on every interface, which
/// the mirror never does unless told to). Multicast scouting is always turned off unless
/// [`multicast_scouting`](Self::multicast_scouting) is set, and gossip scouting unless
/// [`gossip`](Self::gossip) is: peers find each other only through the explicit endpoints.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// Endpoints to listen on (`tcp/127.0.0.1:7447`, `tls/0.0.0.0:7447`, ...).
    pub listen: Vec<String>,
    /// Endpoints to connect to; zenoh retries them forever in peer mode.
    pub connect: Vec<String>,
    /// A zenoh configuration file (JSON5), for TLS certificates, authentication, transport
    /// options. Its endpoints and scouting settings are overridden as described above.
    pub config_file: Option<PathBuf>,
    /// `client` instead of `peer` mode (a client needs a zenoh router to connect to).
    pub client: bool,
    /// Let zenoh discover peers by UDP multicast (off by default: no multicast traffic).
    pub multicast_scouting: bool,
    /// Let zenoh gossip discovered peers' locators (off by default).
    pub gossip: bool,
}

impl Network {
    /// Listens on `endpoint`, connects nowhere.
    pub fn listen(endpoint: impl Into<String>) -> Self {
        Network {
            listen: vec![endpoint.into()],
            ..Network::default()
        }
    }

    /// Connects to `endpoint`, listens nowhere.
    pub fn connect(endpoint: impl Into<String>) -> Self {
        Network {
            connect: vec![endpoint.into()],
            ..Network::default()
        }
    }

    /// The zenoh configuration.
    pub fn zenoh_config(&self) -> Result<zenoh::Config, MirrorError> {
        let mut c = match &self.config_file {
            Some(path) => zenoh::Config::from_file(path).map_err(|e| MirrorError::Config {
                what: format!("zenoh configuration file {}", path.display()),
                why: e.to_string(),
            })?,
            None => zenoh::Config::default(),
        };
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
        let mut set = |key: &str, value: String| {
            c.insert_json5(key, &value)
                .map_err(|e| MirrorError::Config {
                    what: format!("{key} = {value}"),
                    why: e.to_string(),
                })
        };
        set(
            "mode",
            if self.client {
                "\"client\""
            } else {
                "\"peer\""
            }
            .to_owned(),
        )?;
        set("listen/endpoints", json(&self.listen))?;
        set("connect/endpoints", json(&self.connect))?;
        set(
            "scouting/multicast/enabled",
            self.multicast_scouting.to_string(),
        )?;
        set("scouting/gossip/enabled", self.gossip.to_string())?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_passes_through_but_endpoints_and_scouting_are_ours() {
        let dir = std::env::temp_dir().join(format!("msz-net-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("zenoh.json5");
        std::fs::write(
            &file,
            r#"{
                // A deployment's settings: kept.
                transport: { unicast: { max_sessions: 7 } },
                // Settings the mirror owns: replaced.
                listen: { endpoints: ["tcp/0.0.0.0:7447"] },
                scouting: { multicast: { enabled: true }, gossip: { enabled: true } },
            }"#,
        )
        .unwrap();
        let net = Network {
            config_file: Some(file.clone()),
            ..Network::listen("tcp/127.0.0.1:17447")
        };
        let c = net.zenoh_config().unwrap();
        assert_eq!(c.get_json("transport/unicast/max_sessions").unwrap(), "7");
        assert_eq!(
            c.get_json("listen/endpoints").unwrap(),
            r#"["tcp/127.0.0.1:17447"]"#
        );
        assert_eq!(c.get_json("connect/endpoints").unwrap(), "[]");
        assert_eq!(c.get_json("scouting/multicast/enabled").unwrap(), "false");
        assert_eq!(c.get_json("scouting/gossip/enabled").unwrap(), "false");

        // A file zenoh refuses is an error naming it.
        std::fs::write(
            &file,
            "{ transport: { unicast: { max_sessions: \"many\" } } }",
        )
        .unwrap();
        let e = net.zenoh_config().unwrap_err().to_string();
        assert!(e.contains("zenoh.json5"), "{e}");
        // So is an endpoint it cannot parse.
        let e = Network::listen("not an endpoint")
            .zenoh_config()
            .unwrap_err();
        assert!(e.to_string().contains("listen/endpoints"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
