//! The interface XML shipped in `interfaces/` is exactly what the running daemon introspects.
//! After a deliberate API change, run `QRPAYD_BLESS=1 cargo test --test api introspection` to
//! rewrite the files, and review the diff: an API may grow, never break.

use std::path::PathBuf;

use crate::harness::*;

fn interface_block<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml
        .find(&format!("<interface name=\"{name}\">"))
        .unwrap_or_else(|| panic!("{name} is not served"));
    let end = xml[start..]
        .find("</interface>")
        .map(|end| start + end + "</interface>".len())
        .expect("interface closes");
    &xml[start..end]
}

fn normalised(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_interface_xml_matches_the_daemon() {
    let h = Harness::start().await;
    let connection = zbus::connection::Builder::address(h.bus.address())
        .build()
        .await
        .expect("connect");
    let reply = connection
        .call_method(
            Some("org.qrpayd.Pay1"),
            "/org/qrpayd/Pay1",
            Some("org.freedesktop.DBus.Introspectable"),
            "Introspect",
            &(),
        )
        .await
        .expect("introspect");
    let xml: String = reply.body().deserialize().expect("xml");
    for name in ["org.qrpayd.Pay1.Terminal", "org.qrpayd.Pay1.Simulator"] {
        let served = interface_block(&xml, name);
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("interfaces")
            .join(format!("{name}.xml"));
        let document = format!(
            "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n{}\n</node>\n",
            normalised(served)
        );
        if std::env::var_os("QRPAYD_BLESS").is_some() {
            std::fs::write(&file, &document).expect("bless");
        }
        let shipped =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            normalised(&shipped),
            normalised(&document),
            "{name} differs from {}",
            file.display()
        );
        assert_every_member_documented(served, name);
    }
}

/// Every method, argument, signal and property carries an `org.gtk.GDBus.DocString` annotation
/// (what `gdbus introspect` and D-Spy show): the line after each such element's opening is its
/// DocString, and no element of them closes itself undocumented.
fn assert_every_member_documented(block: &str, interface: &str) {
    let lines: Vec<&str> = block.lines().map(str::trim).collect();
    let mut counted = 0;
    for (i, line) in lines.iter().enumerate() {
        let element = ["<method ", "<signal ", "<property ", "<arg "]
            .iter()
            .any(|p| line.starts_with(p));
        if !element {
            continue;
        }
        counted += 1;
        assert!(
            !line.ends_with("/>")
                && lines.get(i + 1).is_some_and(|next| next
                    .starts_with("<annotation name=\"org.gtk.GDBus.DocString\" value=\"")
                    && !next.contains("value=\"\"")),
            "{interface}: {line} has no DocString annotation (see src/dbus/introspection.rs)"
        );
    }
    assert!(counted > 5, "{interface}: {counted} elements");
}
