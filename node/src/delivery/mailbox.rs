//! Sealing for the tracker mailbox: which device certificates may be
//! sealed to, the sealed items for them, and how a group's items are
//! packed into as few requests as the tracker's limits allow.

use crate::seal;
use skein_proto::bytes::{MailId, PublicKey};
use skein_proto::control::{MailboxPut, SealedItem};
use skein_proto::device::DeviceCert;
use skein_proto::limits::{MAX_CONTROL_FRAME, MAX_MAIL_MANY_ITEMS};
use skein_proto::peer::SealedPayload;

/// Bytes of one request left to sealed items: the rest is room for names,
/// ids and framing.
const MANY_BYTES: usize = MAX_CONTROL_FRAME * 3 / 4;
/// What one item costs beyond its ciphertext (id, device, lengths).
const ITEM_OVERHEAD: usize = 40;

pub use crate::seal::seal_aad;

/// The certificates among `certs` that may be sealed to for `user` at
/// `now_ms`: signed by the organisation key `org_key`, issued to `user`, and
/// unexpired. Any other is skipped, and logged.
pub fn sealable<'a>(
    org_key: &PublicKey,
    user: &str,
    certs: impl IntoIterator<Item = &'a DeviceCert>,
    now_ms: u64,
) -> Vec<&'a DeviceCert> {
    let check = |c: &DeviceCert| -> Result<(), String> {
        let body = skein_certs::verify_device_cert(org_key, c, now_ms).map_err(|e| e.to_string())?;
        if body.user != user {
            return Err(format!("it was issued to {:?}", body.user));
        }
        Ok(())
    };
    certs
        .into_iter()
        .filter(|c| match check(c) {
            Ok(()) => true,
            Err(why) => {
                let device = c.body.device_id;
                tracing::warn!(%user, %device, %why, "not sealing mail to a device certificate the tracker listed");
                false
            }
        })
        .collect()
}

/// `payload` sealed to each of `devices`, as mailbox items with id `id`.
pub fn seal_items(id: MailId, payload: &SealedPayload, devices: &[DeviceCert]) -> Result<Vec<SealedItem>, String> {
    devices
        .iter()
        .map(|c| {
            let aad = seal_aad(&id, &c.body.device_id);
            let sealed = seal::seal_payload(&c.body.x25519, payload, &aad).map_err(|e| e.to_string())?;
            Ok(SealedItem { id, to_device: c.body.device_id, sealed })
        })
        .collect()
}

/// Splits several users' puts into requests within the tracker's limits
/// (at most [`MAX_MAIL_MANY_ITEMS`] items, and well inside one frame),
/// keeping each user's items together and in order. Usually one request.
pub fn pack(puts: Vec<MailboxPut>) -> Vec<Vec<MailboxPut>> {
    let mut batches: Vec<Vec<MailboxPut>> = Vec::new();
    let (mut items, mut bytes) = (0usize, 0usize);
    for put in puts {
        let n = put.items.len();
        let size: usize = put.items.iter().map(|i| i.sealed.len() + ITEM_OVERHEAD).sum::<usize>() + put.to_user.len();
        let fits = items + n <= MAX_MAIL_MANY_ITEMS && bytes + size <= MANY_BYTES;
        match batches.last_mut() {
            Some(batch) if fits => batch.push(put),
            _ => {
                (items, bytes) = (0, 0);
                batches.push(vec![put]);
            }
        }
        items += n;
        bytes += size;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_certs::OrgSigningKey;
    use skein_proto::bytes::DeviceId;
    use skein_proto::device::DeviceCertBody;

    const NOW: u64 = 1_700_000_000_000;

    fn body(user: &str, device: u8, expires_at_ms: u64) -> DeviceCertBody {
        DeviceCertBody {
            version: 1,
            serial: u64::from(device),
            org: "Skein".into(),
            user: user.into(),
            device_id: DeviceId([device; 16]),
            peer_id: Vec::new(),
            x25519: PublicKey([device; 32]),
            issued_at_ms: NOW - 1_000,
            expires_at_ms,
        }
    }

    /// A lookup answer listing one good device of bob's among forged,
    /// misdirected, expired and tampered certificates: only the good one
    /// is sealed to.
    #[test]
    fn mail_is_sealed_only_to_certificates_the_organisation_signed_for_the_recipient() {
        let org = OrgSigningKey::generate();
        let later = NOW + 3_600_000;
        let mut tampered = org.sign(body("bob", 5, later));
        tampered.body.x25519 = PublicKey([0xee; 32]);
        let known = [
            org.sign(body("bob", 1, later)),
            OrgSigningKey::generate().sign(body("bob", 2, later)),
            org.sign(body("carol", 3, later)),
            org.sign(body("bob", 4, NOW)),
            tampered,
        ];
        let chosen = sealable(&org.public(), "bob", &known, NOW);
        let devices: Vec<DeviceId> = chosen.iter().map(|c| c.body.device_id).collect();
        assert_eq!(devices, vec![DeviceId([1; 16])]);
        assert!(sealable(&OrgSigningKey::generate().public(), "bob", &known, NOW).is_empty());
    }

    fn put(user: &str, devices: usize, size: usize) -> MailboxPut {
        let item =
            |d: usize| SealedItem { id: MailId([1; 16]), to_device: DeviceId([d as u8; 16]), sealed: vec![0; size] };
        MailboxPut { to_user: user.into(), items: (0..devices).map(item).collect() }
    }

    #[test]
    fn a_group_s_puts_go_in_one_request_unless_the_limits_say_otherwise() {
        // 100 members with two devices and a short message each: one request.
        let small: Vec<MailboxPut> = (0..100).map(|i| put(&format!("u{i}"), 2, 300)).collect();
        let packed = pack(small.clone());
        assert_eq!(packed.len(), 1);
        assert_eq!(packed[0], small, "every put, in order");

        // 500 members with two devices: the item count splits it.
        let many: Vec<MailboxPut> = (0..500).map(|i| put(&format!("u{i}"), 2, 100)).collect();
        let packed = pack(many.clone());
        assert!(packed.iter().all(|b| b.iter().map(|p| p.items.len()).sum::<usize>() <= MAX_MAIL_MANY_ITEMS));
        assert_eq!(packed.len(), 2);
        assert_eq!(packed.concat(), many, "nothing lost or reordered");

        // Large items: the bytes split it, and each request fits a frame.
        let big: Vec<MailboxPut> = (0..20).map(|i| put(&format!("u{i}"), 2, 64 * 1024)).collect();
        let packed = pack(big.clone());
        assert!(packed.len() > 1);
        for b in &packed {
            let req = skein_proto::control::Request::MailboxPutMany(b.clone());
            let bytes = skein_proto::frame::encode_payload(&req).expect("encodes");
            assert!(bytes.len() < MAX_CONTROL_FRAME, "{} bytes", bytes.len());
        }
        assert_eq!(packed.concat(), big);
        assert!(pack(Vec::new()).is_empty());
    }
}
