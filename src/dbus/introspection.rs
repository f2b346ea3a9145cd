//! The introspection the daemon serves, with documentation a D-Bus browser shows: every method,
//! argument, signal and property of qrpayd's interfaces carries an `org.gtk.GDBus.DocString`
//! annotation, as `gdbus introspect` and D-Spy read it.
//!
//! zbus writes a member's Rust doc comment as an XML comment before the member, and knows
//! nothing of arguments' documentation. So qrpayd serves `org.freedesktop.DBus.Introspectable`
//! at its object itself: zbus's XML of each interface, each comment turned into a DocString
//! annotation inside the member it documents, and each argument documented from
//! [`ARGUMENT_DOCS`]. The doc comments in `terminal.rs` and `simulator.rs` stay the one source of
//! the members' documentation; `interfaces/*.xml` is this XML, checked by a test.

use std::fmt::Write;

use zbus::interface;
use zbus::object_server::{Interface, ObjectServer};

use super::names;
use super::simulator::SimulatorControl;
use super::terminal::Terminal;

/// The documentation of each argument: member, argument (an out-argument, which has no name, by
/// its position: `out0`), text.
pub const ARGUMENT_DOCS: &[(&str, &str, &str)] = &[
    (
        "Checkout",
        "request",
        "The payment asked for: `source_id` and `amount` (a decimal string) required; `source_type`, `source_uid`, `currency`, `provider` (`system` for cash), `method`, `description`, `expires_in_ms`, `allow_partial`, `replace_open`, `items`, and a card's or account's keys for method `ATM`.",
    ),
    (
        "Checkout",
        "out0",
        "The transaction and its new or live attempt: `transaction_id`, `transaction_number`, `transaction_status`, `attempt_id`, `attempt_code`, `attempt_status`, `total`, `paid`, `remaining`, `amount`, `qr_text`, `expires_at` and more.",
    ),
    (
        "ConfirmSystemPayment",
        "request",
        "`attempt_id` (or its code) or `transaction_id`, `tendered` (a decimal string), `note`.",
    ),
    (
        "ConfirmSystemPayment",
        "out0",
        "`transaction_id`, `transaction_status`, `paid`, `attempt_id`, `attempt_status`, `tendered`, `change`.",
    ),
    (
        "Cancel",
        "request",
        "`attempt_id` (or its code) or `transaction_id`, and an optional `reason`.",
    ),
    (
        "Cancel",
        "out0",
        "`transaction_id`, `transaction_status` and `cancelled_attempts` (each `id`, `code`, `type`, `status`, `parent_id`).",
    ),
    (
        "Verify",
        "attempt_id",
        "The attempt's id or code (`ATT000001`).",
    ),
    (
        "Verify",
        "out0",
        "`attempt_id`, `attempt_status`, `provider`, `provider_code`, `provider_message`, `paid`.",
    ),
    (
        "Refund",
        "request",
        "`attempt_id` (or its code) of a `302_SUCCESS` payment attempt, `amount` (a decimal string), `reason`, and `request_id`, the till's own key that makes a repeated call answer the same refund.",
    ),
    (
        "Refund",
        "out0",
        "`refund_attempt_id`, `refund_attempt_code`, `type`, `status` (`302_SUCCESS`, or `204_SENT` while the provider's answer is unknown), `amount`, `parent_id`, `request_id`.",
    ),
    (
        "GetTransaction",
        "id_or_number",
        "A transaction id or number (`TXN000001`).",
    ),
    (
        "GetTransaction",
        "out0",
        "The transaction's fields with `items`, `attempts` and `payments`.",
    ),
    (
        "ListTransactions",
        "filter_map",
        "`status`, `source_type`, `source_id`, `since`, `until` (RFC 3339), `overpaid`, `limit`, `offset`; all optional.",
    ),
    (
        "ListTransactions",
        "out0",
        "The matching transactions, newest first, each as GetTransaction's fields without attempts and payments.",
    ),
    (
        "CountTransactions",
        "filter_map",
        "As ListTransactions' filter; `limit` and `offset` are ignored.",
    ),
    ("CountTransactions", "out0", "How many transactions match."),
    (
        "Reconcile",
        "request",
        "`provider`, `date` (`YYYY-MM-DD`, the provider's day) and `record_missing`.",
    ),
    (
        "Reconcile",
        "out0",
        "One row per payment, with its `verdict`.",
    ),
    (
        "TransactionChanged",
        "transaction_id",
        "The transaction's id.",
    ),
    (
        "TransactionChanged",
        "status",
        "Its status now (`100_NEW`, `300_PARTIAL`, `304_SETTLED`, `505_CANCELLED`).",
    ),
    (
        "TransactionChanged",
        "details",
        "`seq`, `transaction_number`, `source_type`, `source_id`, `currency`, `total`, `paid`, `refunded`, `overpaid`, `updated_at`.",
    ),
    ("AttemptChanged", "attempt_id", "The attempt's id."),
    ("AttemptChanged", "transaction_id", "Its transaction's id."),
    (
        "AttemptChanged",
        "status",
        "Its status now (`100_NEW`, `204_SENT`, `302_SUCCESS`, `500_FAIL`, `501_EXPIRED`).",
    ),
    (
        "AttemptChanged",
        "details",
        "`seq`, `attempt_code`, `type`, `provider`, `method`, `amount`, `paid`, `refunded`, `parent_id`, `qr_text` (while live), `expires_at`, `failure_code`, `failure_message`, `request_id`, `updated_at`.",
    ),
    ("AttemptUnresolved", "attempt_id", "The attempt's id."),
    (
        "AttemptUnresolved",
        "transaction_id",
        "Its transaction's id.",
    ),
    (
        "AttemptUnresolved",
        "details",
        "`seq`, `attempt_code`, `type`, `provider`, `status`, `since`, `reason`.",
    ),
    (
        "ListParkedSync",
        "out0",
        "One row per parked event: `seq`, `transaction_id`, `transaction_number`, `kind`, `answer`, `parked_at`.",
    ),
    (
        "RetrySync",
        "seq",
        "The parked event's `seq` (from ListParkedSync), or 0 for every parked event.",
    ),
    (
        "RetrySync",
        "out0",
        "How many events were released to be sent again.",
    ),
    ("Pay", "attempt_id", "The attempt's id or code."),
    (
        "Pay",
        "amount",
        "How much the customer pays, a decimal string; empty: the rest.",
    ),
    ("Fail", "attempt_id", "The attempt's id or code."),
    (
        "SetOffline",
        "offline",
        "True: every call to the simulated provider answers unavailable; false: it answers again.",
    ),
];

/// The annotation D-Bus browsers read a member's documentation from.
pub const DOC_STRING: &str = "org.gtk.GDBus.DocString";

/// `org.freedesktop.DBus.Introspectable` at qrpayd's object, served in place of zbus's own.
pub struct DocumentedIntrospection;

/// zbus's `org.freedesktop.DBus.Peer`, which every object serves; zbus does not export it, so
/// its (fixed) description is written here.
const PEER_XML: &str = r#"<interface name="org.freedesktop.DBus.Peer">
<method name="Ping">
</method>
<method name="GetMachineId">
<arg type="s" direction="out"/>
</method>
</interface>
"#;

#[interface(
    name = "org.freedesktop.DBus.Introspectable",
    introspection_docs = false
)]
impl DocumentedIntrospection {
    /// The object's interfaces, documented.
    async fn introspect(&self, #[zbus(object_server)] server: &ObjectServer) -> String {
        let mut raw = String::new();
        raw.push_str(PEER_XML);
        zbus::fdo::Properties.introspect_to_writer(&mut raw, 0);
        self.introspect_to_writer(&mut raw, 0);
        if let Ok(terminal) = server.interface::<_, Terminal>(names::OBJECT_PATH).await {
            terminal.get().await.introspect_to_writer(&mut raw, 0);
        }
        if let Ok(simulator) = server
            .interface::<_, SimulatorControl>(names::OBJECT_PATH)
            .await
        {
            simulator.get().await.introspect_to_writer(&mut raw, 0);
        }
        format!(
            "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
             \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n{}</node>\n",
            documented(&raw)
        )
    }
}

/// Serves [`DocumentedIntrospection`] at qrpayd's object in place of zbus's introspection.
/// (A client that introspects in the instant between the name being taken and this call gets
/// zbus's XML: the same interfaces, with their documentation as comments.)
pub async fn serve(connection: &zbus::Connection) -> zbus::Result<()> {
    let server = connection.object_server();
    server
        .remove_named(
            names::OBJECT_PATH,
            zbus::names::InterfaceName::from_static_str_unchecked(
                "org.freedesktop.DBus.Introspectable",
            ),
        )
        .await?;
    server
        .at(names::OBJECT_PATH, DocumentedIntrospection)
        .await?;
    Ok(())
}

/// zbus's introspection XML with each member's comment moved into it as a DocString and each
/// argument documented from [`ARGUMENT_DOCS`]. Works line by line on zbus's layout: one
/// element per line, a comment's `<!--` and `-->` on lines of their own.
pub fn documented(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() * 2);
    let mut lines = xml.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut pending: Option<String> = None;
    let mut member = String::new();
    let mut out_args = 0;
    while let Some(line) = lines.next() {
        if line == "<!--" {
            let mut text = Vec::new();
            for line in lines.by_ref() {
                if line == "-->" {
                    break;
                }
                text.push(line);
            }
            pending = Some(text.join(" "));
            continue;
        }
        let doc = pending.take();
        if let Some(name) = ["<method ", "<signal "]
            .iter()
            .find(|p| line.starts_with(*p))
            .and_then(|_| attribute(line, "name"))
        {
            member = name.to_owned();
            out_args = 0;
        }
        let doc = if line.starts_with("<arg ") {
            let key = match attribute(line, "name") {
                Some(name) => name.to_owned(),
                None => {
                    out_args += 1;
                    format!("out{}", out_args - 1)
                }
            };
            ARGUMENT_DOCS
                .iter()
                .find(|(m, a, _)| *m == member && *a == key)
                .map(|(_, _, text)| (*text).to_owned())
        } else {
            doc
        };
        match (doc, line.strip_suffix("/>")) {
            // A self-closing element opened, documented and closed.
            (Some(doc), Some(open)) => {
                let tag = line[1..].split(' ').next().unwrap_or("");
                let _ = writeln!(out, "{}>", open.trim_end());
                let _ = writeln!(out, "{}", annotation(&doc));
                let _ = writeln!(out, "</{tag}>");
            }
            (Some(doc), None) => {
                let _ = writeln!(out, "{line}");
                let _ = writeln!(out, "{}", annotation(&doc));
            }
            (None, _) => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// The value of `name="…"` in one element's line.
fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = line[start..].find('"')?;
    Some(&line[start..start + end])
}

/// A DocString annotation holding `text`, escaped for an XML attribute.
fn annotation(text: &str) -> String {
    let value = text
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<annotation name=\"{DOC_STRING}\" value=\"{value}\"/>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_become_doc_strings_and_arguments_are_documented_from_the_table() {
        let zbus_xml = "<interface name=\"org.qrpayd.Pay1.Terminal\">\n<!--\n Checks an attempt\n with its provider <now>.\n -->\n<method name=\"Verify\">\n<arg name=\"attempt_id\" type=\"s\" direction=\"in\"/>\n<arg type=\"a{sv}\" direction=\"out\"/>\n</method>\n<!--\n The daemon's version.\n -->\n<property name=\"Version\" type=\"s\" access=\"read\">\n<annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n</property>\n</interface>\n";
        let documented = documented(zbus_xml);
        assert_eq!(
            documented,
            "<interface name=\"org.qrpayd.Pay1.Terminal\">\n\
             <method name=\"Verify\">\n\
             <annotation name=\"org.gtk.GDBus.DocString\" value=\"Checks an attempt with its provider &lt;now&gt;.\"/>\n\
             <arg name=\"attempt_id\" type=\"s\" direction=\"in\">\n\
             <annotation name=\"org.gtk.GDBus.DocString\" value=\"The attempt's id or code (`ATT000001`).\"/>\n\
             </arg>\n\
             <arg type=\"a{sv}\" direction=\"out\">\n\
             <annotation name=\"org.gtk.GDBus.DocString\" value=\"`attempt_id`, `attempt_status`, `provider`, `provider_code`, `provider_message`, `paid`.\"/>\n\
             </arg>\n\
             </method>\n\
             <property name=\"Version\" type=\"s\" access=\"read\">\n\
             <annotation name=\"org.gtk.GDBus.DocString\" value=\"The daemon's version.\"/>\n\
             <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n\
             </property>\n\
             </interface>\n"
        );
    }
}
