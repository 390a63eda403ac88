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

/// The notice sent to the address an account had before its e-mail was changed
/// (`PATCH /users/me/email`, or an admin's `PATCH /modo/users/{id}`), with the link that undoes
/// the change.
pub fn email_changed(to: &str, new_email: &str, link: &str) -> Email {
    link_email(
        to,
        "The e-mail address of your MelodyHue account was changed",
        &format!(
            "The e-mail address of your MelodyHue account was changed from this address to \
             {new_email}. If you made this change, there is nothing to do."
        ),
        "This was not me: restore my address",
        "The link works once, within 7 days. Restoring the address signs out every session, \
         including whoever made the change; if they also changed the password, ask for a \
         password reset afterwards.",
        link,
    )
}

/// The notice that an e-mail change was undone, sent to the restored address and to the one it
/// replaced.
pub fn email_reverted(to: &str, restored_email: &str) -> Email {
    let subject = "The e-mail address of your MelodyHue account was restored";
    let body = format!(
        "The e-mail address of a MelodyHue account was set back to {restored_email} with the \
         link sent after it was changed. Every session of the account was signed out and every \
         pending reset link cancelled. If the password was changed meanwhile, ask for a \
         password reset from the login page."
    );
    let text = format!("Hello,\n\n{body}\n\n-- \nMelodyHue\n");
    let html = format!(
        "<!DOCTYPE html>\n\
         <html><head><meta charset=\"utf-8\"><title>{subject}</title></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5\">\n\
         <p>Hello,</p>\n<p>{body}</p>\n<p>MelodyHue</p>\n</body></html>\n",
        subject = encode_text(subject),
        body = encode_text(&body),
    );
    Email {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text,
        html,
    }
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
