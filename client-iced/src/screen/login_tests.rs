//! The sign-in screen's logic: what it asks for, and where each failure
//! from the tracker shows.

use super::login::{Action, Failure, Field, Login, Message, explain};
use skein_node::session::SessionError;
use skein_node::tracker_client::ClientError;
use skein_proto::{ErrorBody, ErrorCode};

fn refused(code: ErrorCode, message: &str) -> SessionError {
    SessionError::Client(ClientError::Refused(ErrorBody::new(code, message)))
}

#[test]
fn each_failure_shows_under_the_field_it_concerns() {
    let wrong = explain(&refused(ErrorCode::BadCredentials, "bad credentials"));
    assert_eq!(wrong, Failure { field: Field::Credentials, message: "Wrong user name or password.".into() });
    let disabled = explain(&refused(ErrorCode::AccountDisabled, "disabled"));
    assert_eq!(disabled.field, Field::Credentials);
    assert!(disabled.message.contains("disabled") && disabled.message.contains("administrator"), "{disabled:?}");
    let gone = explain(&SessionError::Client(ClientError::Unreachable {
        address: "t:7400".into(),
        port: 7400,
        reason: "no answer".into(),
    }));
    assert_eq!(gone.field, Field::Tracker);
    assert!(gone.message.contains("cannot reach the tracker at t:7400"), "{gone:?}");
    let untrusted =
        explain(&SessionError::Client(ClientError::UntrustedTracker { address: "t:7400".into(), ca: "ca.pem".into() }));
    assert_eq!(untrusted.field, Field::Ca);
    assert!(untrusted.message.contains("not signed by the CA in ca.pem"), "{untrusted:?}");
}

#[test]
fn signing_in_asks_for_what_is_missing_first_and_shows_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = Login::new(dir.path().join("profile"));
    l.tracker.clear();
    assert!(matches!(l.update(Message::Submit), Action::None));
    assert_eq!(l.failure.as_ref().map(|f| f.field), Some(Field::Tracker), "no tracker yet");
    let _ = l.update(Message::Tracker("t:7400".into()));
    let _ = l.update(Message::Ca("/org/ca.pem".into()));
    let _ = l.update(Message::User("alice".into()));
    assert!(matches!(l.update(Message::Submit), Action::None));
    assert_eq!(l.failure.as_ref().map(|f| f.field), Some(Field::Credentials), "no password yet");
    let _ = l.update(Message::Password("secret".into()));
    assert!(matches!(l.update(Message::Submit), Action::Run(_)), "asks the tracker");
    assert!(l.busy && l.failure.is_none());
    assert!(matches!(l.update(Message::Submit), Action::None), "once at a time");
    let failure = Failure { field: Field::Credentials, message: "Wrong user name or password.".into() };
    let _ = l.update(Message::Done(Err(failure.clone())));
    assert_eq!((l.busy, l.failure.clone()), (false, Some(failure)));
    let _ = l.update(Message::Stay(false));
    assert!(matches!(l.update(Message::Done(Ok(()))), Action::SignedIn { stay: false }));
}

#[test]
fn without_a_ca_file_the_trackers_ca_is_used_only_once_its_fingerprint_is_confirmed() {
    use skein_node::first_contact::PresentedCa;
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("profile");
    let mut l = Login::new(profile.clone());
    l.ca.clear();
    let _ = l.update(Message::User("alice".into()));
    let _ = l.update(Message::Password("secret".into()));
    assert!(matches!(l.update(Message::Submit), Action::Run(_)), "asks the tracker for its CA");
    let ca = PresentedCa {
        pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        fingerprint: "AB:CD".into(),
        subject: "CN=Acme Root CA".into(),
    };
    let _ = l.update(Message::Presented(Ok(ca.clone())));
    assert_eq!(l.presented.as_ref(), Some(&ca), "shown for confirmation");
    let _ = l.update(Message::Distrust);
    assert!(l.presented.is_none() && l.ca.is_empty());
    assert_eq!(l.failure.as_ref().map(|f| f.field), Some(Field::Ca));
    assert!(!profile.join("ca.pem").exists(), "nothing is kept of a CA not trusted");
    let _ = l.update(Message::Presented(Ok(ca.clone())));
    assert!(matches!(l.update(Message::Trust), Action::Run(_)), "signs in with it");
    assert_eq!(std::fs::read_to_string(profile.join("ca.pem")).expect("kept"), ca.pem);
    assert_eq!(l.ca, profile.join("ca.pem").display().to_string());
}
