//! The messages MelodyHue sends, in plain text and HTML.
//!
//! The link is written as is in the text part and HTML-escaped in the HTML part.

use html_escape::{encode_double_quoted_attribute, encode_text};

use super::Email;

/// The mail with the password reset link (`POST /auth/forgot`).
pub fn password_reset(to: &str, link: &str) -> Email {
    link_email(
        to,
        "Reset your MelodyHue password",
        "Someone, hopefully you, asked to reset the password of your MelodyHue account.",
        "Reset my password",
        "The link works once, within one hour. If you did not ask for it, ignore this message: \
         your password stays as it is.",
        link,
    )
}

/// The mail with the link that turns two-factor authentication off
/// (`POST /auth/2fa/disable/request`).
pub fn twofa_disable(to: &str, link: &str) -> Email {
    link_email(
        to,
        "Disable two-factor authentication on MelodyHue",
        "Someone, hopefully you, asked to disable two-factor authentication on your MelodyHue \
         account.",
        "Disable two-factor authentication",
        "The link works once, within one hour. If you did not ask for it, ignore this message \
         and consider changing your password: two-factor authentication stays on.",
        link,
    )
}

fn link_email(
    to: &str,
    subject: &str,
    intro: &str,
    action: &str,
    outro: &str,
    link: &str,
) -> Email {
    let text = format!("Hello,\n\n{intro}\n\n{action}: {link}\n\n{outro}\n\n-- \nMelodyHue\n");
    let html = format!(
        "<!DOCTYPE html>\n\
         <html><head><meta charset=\"utf-8\"><title>{subject}</title></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5\">\n\
         <p>Hello,</p>\n\
         <p>{intro}</p>\n\
         <p><a href=\"{href}\">{action}</a></p>\n\
         <p>If the link does not open, copy this address into your browser:<br>{shown}</p>\n\
         <p>{outro}</p>\n\
         <p>MelodyHue</p>\n\
         </body></html>\n",
        subject = encode_text(subject),
        intro = encode_text(intro),
        action = encode_text(action),
        outro = encode_text(outro),
        href = encode_double_quoted_attribute(link),
        shown = encode_text(link),
    );
    Email {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text,
        html,
    }
}
