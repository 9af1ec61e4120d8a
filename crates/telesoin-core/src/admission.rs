//! Admission: may this participant enter this session now?
//!
//! The order of the checks is the order a patient lives them: is the session open and is it
//! time; is télésoin allowed at all for this patient (prior in-person care, consent); is the
//! required adult attested present; then the lobby, until the kiné is here and lets them in.

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    Companion, Consent, InPersonVisit, Patient, Role, Session, SessionStatus, VisitKind,
};

/// Which reading of "prior in-person care" applies. It is configuration and every refusal
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InPersonRule {
    /// Arrêté du 3 juin 2021: at least one prior session in person with this kiné.
    #[default]
    #[serde(rename = "arrete_2021")]
    Arrete2021,
    /// Convention (avenant 7, since 2024-02-22): the treatment's first session, where the
    /// initial bilan (BDK) is done, is in person, never in télésoin; an act or bilan in the
    /// patient's presence within the previous 12 months. Exception: a patient leaving hospital
    /// who had an in-person bilan by a kiné before discharge ([`VisitKind::HospitalBilan`]).
    /// The kiné practises in the patient's territory ([`TerritoryCheck`]).
    Convention,
}

/// How "the kiné practises in the patient's territory" (convention, avenant 7) is checked. It is
/// configuration; a refusal names the convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TerritoryCheck {
    /// Not checked.
    #[default]
    Off,
    /// The département of the practice is the patient's (first two characters of a French
    /// postcode, `2A`/`2B` for Corsica, three digits overseas).
    Departement,
}

impl TerritoryCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            TerritoryCheck::Off => "off",
            TerritoryCheck::Departement => "departement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(TerritoryCheck::Off),
            "departement" => Some(TerritoryCheck::Departement),
            _ => None,
        }
    }
}

/// A département code as written by a person: `75`, `2A`, `971`, or a postcode (`75011`,
/// `97110`, `20000` is ambiguous and refused). `None` when it is not one.
pub fn departement_of(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_uppercase();
    let all_digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match s.len() {
        2 if all_digits && s != "00" && s != "20" && s != "96" => Some(s),
        2 if s == "2A" || s == "2B" => Some(s),
        3 if all_digits && s.starts_with("97") => Some(s),
        5 if all_digits && s.starts_with("97") => Some(s[..3].to_owned()),
        5 if all_digits && !s.starts_with("20") && !s.starts_with("00") => Some(s[..2].to_owned()),
        _ => None,
    }
}

/// The territory condition: the practice's département is the patient's. Unknown on either
/// side counts as not met when the check is on (the kiné records them).
pub fn territory(
    check: TerritoryCheck,
    practice: Option<&str>,
    patient: Option<&str>,
) -> Result<(), RefusalCode> {
    match check {
        TerritoryCheck::Off => Ok(()),
        TerritoryCheck::Departement => {
            let practice = practice.and_then(departement_of);
            let patient = patient.and_then(departement_of);
            match (practice, patient) {
                (Some(a), Some(b)) if a == b => Ok(()),
                _ => Err(RefusalCode::OutOfTerritory),
            }
        }
    }
}

impl InPersonRule {
    pub fn as_str(self) -> &'static str {
        match self {
            InPersonRule::Arrete2021 => "arrete_2021",
            InPersonRule::Convention => "convention",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "arrete_2021" => Some(InPersonRule::Arrete2021),
            "convention" => Some(InPersonRule::Convention),
            _ => None,
        }
    }
}

/// Why a participant is kept waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    KineAbsent,
    AwaitingAdmission,
    /// No consent on record and the session lets the patient give it on the join page.
    ConsentRequired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admit,
    Wait(WaitReason),
    NeedsAttestation(Companion),
    Refuse(RefusalCode),
}

/// Every reason telesoin says no, with a stable code and plain words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    // Preconditions.
    InPersonMissing(InPersonRule),
    InPersonBilanMissing,
    InPersonStale,
    /// Convention: the kiné's practice is not in the patient's territory (or either is unknown).
    OutOfTerritory,
    ConsentMissing,
    ConsentWithdrawn,
    /// A minor's consent recorded by the kiné must name the legal representative.
    RepresentativeRequired,
    /// On the join page, a minor cannot consent herself: her legal representative does, named.
    RepresentativeConsentRequired,
    /// A representative named for an adult patient, who consents for themselves.
    RepresentativeUnexpected,
    /// An attested presence (parent, aidant) without the companion's name and relation.
    CompanionUnnamed,
    /// An HN session's price, shown on the join page, was not accepted before admission.
    PriceAcceptanceRequired,
    // The act.
    /// The act needs direct contact or equipment: it cannot be scheduled in télésoin.
    ActNotRemote,
    // Session state and time.
    SessionNotFound,
    SessionCancelled,
    SessionEnded,
    TooEarly,
    TooLate,
    // The link.
    TokenInvalid,
    TokenExpired,
    TokenNotYetValid,
    TokenRevoked,
    TokenWrongSession,
    TokenWrongRole,
    // The conversation.
    JoinFirst,
    AlreadyJoined,
    BadMessage,
    MessageTooLarge,
    RateLimited,
    /// A seat (or a link) joined too often in a short time (`rejoin_burst`, `rejoins_per_minute`).
    RejoinTooFrequent,
    NotAdmitted,
    NotAllowed,
    UnknownPeer,
    AttestationMismatch,
    OriginNotAllowed,
    IdleTimeout,
    // The service.
    Unavailable,
    ShuttingDown,
    // Identity: the patient's INS, the kiné's OpenID Connect login.
    InsFormat,
    InsKey,
    InsOid,
    InsStatus,
    InsTraits,
    InsMismatch,
    OidcNotConfigured,
    OidcUnavailable,
    OidcFailed,
    OidcAcr,
    OidcUnknownRpps,
    PasswordLoginDisabled,
    // REST.
    Unauthenticated,
    BadCredentials,
    NotFound,
    InvalidInput,
    Conflict,
    // The platform API.
    ScopeMissing,
    IdempotencyKeyReused,
    // Hardening of the dashboard API.
    CrossSiteRequest,
    CsrfTokenInvalid,
    LoginThrottled,
    // Reaching the patient.
    ContactMissing,
    ChannelNotConfigured,
}

impl RefusalCode {
    /// The stable code clients switch on.
    pub fn code(self) -> &'static str {
        use RefusalCode::*;
        match self {
            InPersonMissing(_) => "in_person_missing",
            InPersonBilanMissing => "in_person_bilan_missing",
            InPersonStale => "in_person_stale",
            OutOfTerritory => "out_of_territory",
            ConsentMissing => "consent_missing",
            ConsentWithdrawn => "consent_withdrawn",
            RepresentativeRequired => "representative_required",
            RepresentativeConsentRequired => "representative_consent_required",
            RepresentativeUnexpected => "representative_unexpected",
            CompanionUnnamed => "companion_unnamed",
            PriceAcceptanceRequired => "price_acceptance_required",
            ActNotRemote => "act_not_remote",
            SessionNotFound => "session_not_found",
            SessionCancelled => "session_cancelled",
            SessionEnded => "session_ended",
            TooEarly => "too_early",
            TooLate => "too_late",
            TokenInvalid => "token_invalid",
            TokenExpired => "token_expired",
            TokenNotYetValid => "token_not_yet_valid",
            TokenRevoked => "token_revoked",
            TokenWrongSession => "token_wrong_session",
            TokenWrongRole => "token_wrong_role",
            JoinFirst => "join_first",
            AlreadyJoined => "already_joined",
            BadMessage => "bad_message",
            MessageTooLarge => "message_too_large",
            RateLimited => "rate_limited",
            RejoinTooFrequent => "rejoin_too_frequent",
            NotAdmitted => "not_admitted",
            NotAllowed => "not_allowed",
            UnknownPeer => "unknown_peer",
            AttestationMismatch => "attestation_mismatch",
            OriginNotAllowed => "origin_not_allowed",
            IdleTimeout => "idle_timeout",
            Unavailable => "unavailable",
            ShuttingDown => "shutting_down",
            InsFormat => "ins_format",
            InsKey => "ins_key",
            InsOid => "ins_oid",
            InsStatus => "ins_status",
            InsTraits => "ins_traits",
            InsMismatch => "ins_mismatch",
            OidcNotConfigured => "oidc_not_configured",
            OidcUnavailable => "oidc_unavailable",
            OidcFailed => "oidc_failed",
            OidcAcr => "oidc_acr",
            OidcUnknownRpps => "oidc_unknown_rpps",
            PasswordLoginDisabled => "password_login_disabled",
            Unauthenticated => "unauthenticated",
            BadCredentials => "bad_credentials",
            NotFound => "not_found",
            InvalidInput => "invalid_input",
            Conflict => "conflict",
            ScopeMissing => "scope_missing",
            IdempotencyKeyReused => "idempotency_key_reused",
            CrossSiteRequest => "cross_site_request",
            CsrfTokenInvalid => "csrf_token_invalid",
            LoginThrottled => "login_throttled",
            ContactMissing => "contact_missing",
            ChannelNotConfigured => "channel_not_configured",
        }
    }

    /// What the person reads, French first: what happened and what to do next.
    pub fn message_fr(self) -> &'static str {
        use RefusalCode::*;
        match self {
            InPersonMissing(InPersonRule::Arrete2021) => {
                "Le télésoin n'est possible qu'après au moins une séance au cabinet avec ce kinésithérapeute. Prenez d'abord rendez-vous au cabinet."
            }
            InPersonMissing(InPersonRule::Convention) | InPersonBilanMissing => {
                "La première séance, celle du bilan, se fait toujours au cabinet (ou, à la sortie d'une hospitalisation, par le bilan d'un kinésithérapeute avant la sortie). Prenez d'abord rendez-vous au cabinet."
            }
            InPersonStale => {
                "Votre dernière séance ou dernier bilan en présence date de plus de 12 mois. Prenez rendez-vous au cabinet avant une séance à distance."
            }
            OutOfTerritory => {
                "Le télésoin n'est possible qu'avec un kinésithérapeute exerçant sur votre territoire (même département), pour qu'une séance au cabinet reste possible. Vérifiez le département du patient et du cabinet."
            }
            ConsentMissing => {
                "Votre kinésithérapeute doit d'abord enregistrer votre consentement au télésoin. Contactez votre cabinet."
            }
            ConsentWithdrawn => {
                "Vous avez retiré votre consentement au télésoin : la séance ne peut pas avoir lieu à distance. Contactez votre cabinet si vous changez d'avis."
            }
            RepresentativeRequired => {
                "Le patient est mineur : le consentement est celui de son représentant légal. Indiquez son nom et son lien avec le patient (mère, père, tuteur...)."
            }
            RepresentativeConsentRequired => {
                "Pour une personne de moins de 18 ans, c'est le parent ou le représentant légal qui donne son accord : indiquez son nom et son lien avec le patient."
            }
            RepresentativeUnexpected => {
                "Le patient est majeur : il consent lui-même, sans représentant légal. Retirez le nom du représentant."
            }
            CompanionUnnamed => {
                "Indiquez le nom de la personne présente à côté du patient et son lien avec lui (mère, fils, aidant...)."
            }
            PriceAcceptanceRequired => {
                "Cette séance n'est pas remboursée : acceptez d'abord son prix, affiché sur la page de connexion, pour entrer dans la séance."
            }
            ActNotRemote => {
                "Cet acte ne peut pas être fait en télésoin : il demande un contact direct ou un équipement (désencombrement urgent, balnéothérapie...). Programmez-le au cabinet."
            }
            SessionNotFound => {
                "Cette séance n'existe pas. Vérifiez le lien reçu ou contactez votre cabinet."
            }
            SessionCancelled => {
                "Cette séance a été annulée. Contactez votre cabinet pour un nouveau rendez-vous."
            }
            SessionEnded => "Cette séance est terminée. Vous pouvez fermer cette page.",
            TooEarly => {
                "Il est trop tôt : le lien s'ouvre peu avant l'heure du rendez-vous. Revenez un peu plus tard."
            }
            TooLate => {
                "Ce lien n'est plus valable : l'heure du rendez-vous est passée. Contactez votre cabinet."
            }
            TokenInvalid => {
                "Ce lien n'est pas valable. Ouvrez le lien complet reçu de votre cabinet, sans le modifier."
            }
            TokenExpired => "Ce lien a expiré. Demandez un nouveau lien à votre cabinet.",
            TokenNotYetValid => "Ce lien n'est pas encore actif. Revenez à l'heure du rendez-vous.",
            TokenRevoked => "Ce lien a été annulé. Demandez un nouveau lien à votre cabinet.",
            TokenWrongSession => {
                "Ce lien ne correspond pas à cette séance. Ouvrez le lien reçu de votre cabinet."
            }
            TokenWrongRole => "Ce lien ne donne pas accès à cette place dans la séance.",
            JoinFirst => "La connexion doit commencer par le lien de la séance. Rechargez la page.",
            AlreadyJoined => "Vous êtes déjà connecté à cette séance.",
            BadMessage => "Message incompréhensible reçu. Rechargez la page.",
            MessageTooLarge => "Message trop volumineux. Rechargez la page.",
            RateLimited => "Trop de messages en peu de temps. Patientez quelques secondes.",
            RejoinTooFrequent => {
                "Trop de reconnexions en peu de temps. Patientez quelques secondes, puis rejoignez la séance."
            }
            NotAdmitted => {
                "Vous n'êtes pas encore entré dans la séance. Patientez, votre kinésithérapeute va vous faire entrer."
            }
            NotAllowed => "Cette action n'est pas permise à votre place dans la séance.",
            UnknownPeer => "Ce participant n'est pas dans la séance.",
            AttestationMismatch => {
                "La personne présente indiquée ne correspond pas à celle demandée pour cette séance."
            }
            OriginNotAllowed => "Cette page n'est pas autorisée à ouvrir une séance.",
            IdleTimeout => {
                "Connexion interrompue faute d'activité. Rechargez la page pour revenir."
            }
            Unavailable => {
                "Le service est momentanément indisponible. Réessayez dans une minute ; votre lien reste valable."
            }
            ShuttingDown => "Le serveur redémarre. Reconnexion en cours, ne fermez pas la page.",
            InsFormat => {
                "Le matricule INS doit compter 15 caractères (13 chiffres et la clé de 2 chiffres ; 2A ou 2B pour la Corse)."
            }
            InsKey => "La clé du matricule INS ne correspond pas : vérifiez chaque chiffre.",
            InsOid => {
                "L'OID de l'INS n'est pas reconnu : 1.2.250.1.213.1.4.8 pour un NIR, 1.2.250.1.213.1.4.9 pour un NIA."
            }
            InsStatus => {
                "Statut d'identité incohérent : un matricule INS n'existe que pour une identité récupérée ou qualifiée (provisoire, récupérée, validée ou qualifiée)."
            }
            InsTraits => {
                "Traits d'identité invalides : noms et prénoms de naissance en lettres, sexe M, F ou I, code INSEE du lieu de naissance sur 5 caractères."
            }
            InsMismatch => {
                "Le matricule INS ne correspond pas aux traits d'identité (sexe, année ou mois de naissance) ou à la date de naissance du dossier."
            }
            OidcNotConfigured => {
                "La connexion par Pro Santé Connect n'est pas configurée sur ce service. Connectez-vous avec votre mot de passe."
            }
            OidcUnavailable => {
                "Le service d'identification ne répond pas. Réessayez dans quelques minutes, ou connectez-vous avec votre mot de passe."
            }
            OidcFailed => {
                "La connexion n'a pas pu être vérifiée (lien expiré ou déjà utilisé). Recommencez la connexion."
            }
            OidcAcr => {
                "Le niveau d'authentification est insuffisant : utilisez votre carte CPS ou l'application e-CPS."
            }
            OidcUnknownRpps => {
                "Aucun compte de ce service ne correspond à votre numéro RPPS. Demandez à l'administrateur de l'enregistrer."
            }
            PasswordLoginDisabled => {
                "La connexion par mot de passe est désactivée : utilisez Pro Santé Connect."
            }
            Unauthenticated => "Veuillez vous connecter.",
            BadCredentials => "Adresse e-mail ou mot de passe incorrect.",
            NotFound => "Élément introuvable.",
            InvalidInput => "Donnée invalide : vérifiez le formulaire.",
            Conflict => "Cette opération n'est pas possible dans l'état actuel.",
            ScopeMissing => "Cette clé d'API n'autorise pas cette opération.",
            IdempotencyKeyReused => {
                "Cette clé d'idempotence a déjà servi pour une autre requête : utilisez-en une nouvelle."
            }
            CrossSiteRequest => {
                "Requête refusée : elle ne vient pas de la page de telesoin. Ouvrez le tableau de bord depuis son adresse habituelle."
            }
            CsrfTokenInvalid => {
                "Requête refusée : votre session de page a expiré. Rechargez la page ou reconnectez-vous."
            }
            LoginThrottled => {
                "Trop de tentatives de connexion. Patientez quelques minutes avant de réessayer."
            }
            ContactMissing => {
                "Ce patient n'a ni e-mail ni téléphone mobile pour le canal choisi : ajoutez-les dans sa fiche."
            }
            ChannelNotConfigured => {
                "L'envoi par ce canal n'est pas configuré sur ce serveur (relais SMTP ou passerelle SMS) : copiez le lien et envoyez-le vous-même."
            }
        }
    }

    pub fn message_en(self) -> &'static str {
        use RefusalCode::*;
        match self {
            InPersonMissing(InPersonRule::Arrete2021) => {
                "Telehealth is only possible after at least one in-person session with this physiotherapist. Book an in-person appointment first."
            }
            InPersonMissing(InPersonRule::Convention) | InPersonBilanMissing => {
                "The first session, with the assessment, is always in person (or, when leaving hospital, the assessment by a physiotherapist before discharge). Book an in-person appointment first."
            }
            InPersonStale => {
                "Your last session or assessment in person was more than 12 months ago. Book an in-person appointment before a remote one."
            }
            OutOfTerritory => {
                "Telehealth is only possible with a physiotherapist practising in your area (same département), so that an in-person session stays possible. Check the patient's and the practice's département."
            }
            ConsentMissing => {
                "Your physiotherapist must first record your consent to telehealth. Contact the practice."
            }
            ConsentWithdrawn => {
                "You withdrew your consent to telehealth, so this session cannot take place remotely. Contact the practice if you change your mind."
            }
            RepresentativeRequired => {
                "The patient is a minor: the consent is their legal representative's. Enter the representative's name and relation to the patient (mother, father, guardian...)."
            }
            RepresentativeConsentRequired => {
                "For a person under 18, the parent or legal representative gives the consent: enter their name and relation to the patient."
            }
            RepresentativeUnexpected => {
                "The patient is an adult and consents for themselves, without a legal representative. Remove the representative's name."
            }
            CompanionUnnamed => {
                "Enter the name of the person present next to the patient and their relation to them (mother, son, caregiver...)."
            }
            PriceAcceptanceRequired => {
                "This session is not reimbursed: first accept its price, shown on the join page, to enter the session."
            }
            ActNotRemote => {
                "This act cannot be done by telehealth: it needs direct contact or equipment (urgent airway clearance, hydrotherapy...). Schedule it at the practice."
            }
            SessionNotFound => {
                "This session does not exist. Check the link you received or contact the practice."
            }
            SessionCancelled => {
                "This session was cancelled. Contact the practice for a new appointment."
            }
            SessionEnded => "This session is over. You can close this page.",
            TooEarly => {
                "It is too early: the link opens shortly before the appointment. Come back a little later."
            }
            TooLate => {
                "This link is no longer valid: the appointment time has passed. Contact the practice."
            }
            TokenInvalid => {
                "This link is not valid. Open the complete link you received from the practice, unchanged."
            }
            TokenExpired => "This link has expired. Ask the practice for a new link.",
            TokenNotYetValid => "This link is not active yet. Come back at the appointment time.",
            TokenRevoked => "This link was cancelled. Ask the practice for a new link.",
            TokenWrongSession => {
                "This link does not belong to this session. Open the link you received from the practice."
            }
            TokenWrongRole => "This link does not give access to this seat in the session.",
            JoinFirst => "The connection must start with the session link. Reload the page.",
            AlreadyJoined => "You are already connected to this session.",
            BadMessage => "An unreadable message was received. Reload the page.",
            MessageTooLarge => "Message too large. Reload the page.",
            RateLimited => "Too many messages in a short time. Wait a few seconds.",
            RejoinTooFrequent => {
                "Too many reconnections in a short time. Wait a few seconds, then join the session again."
            }
            NotAdmitted => {
                "You have not entered the session yet. Please wait, your physiotherapist will let you in."
            }
            NotAllowed => "This action is not allowed for your seat in the session.",
            UnknownPeer => "This participant is not in the session.",
            AttestationMismatch => {
                "The person you say is present is not the one this session requires."
            }
            OriginNotAllowed => "This page is not allowed to open a session.",
            IdleTimeout => "Connection closed after inactivity. Reload the page to come back.",
            Unavailable => {
                "The service is temporarily unavailable. Try again in a minute; your link stays valid."
            }
            ShuttingDown => "The server is restarting. Reconnecting, do not close the page.",
            InsFormat => {
                "The INS number must have 15 characters (13 digits and the 2-digit key; 2A or 2B for Corsica)."
            }
            InsKey => "The INS number's key does not match: check every digit.",
            InsOid => {
                "The INS OID is not recognised: 1.2.250.1.213.1.4.8 for a NIR, 1.2.250.1.213.1.4.9 for a NIA."
            }
            InsStatus => {
                "Inconsistent identity status: an INS number exists only for a recovered or qualified identity (provisoire, recuperee, validee or qualifiee)."
            }
            InsTraits => {
                "Invalid identity traits: birth names and first names in letters, sex M, F or I, a 5-character INSEE birth place code."
            }
            InsMismatch => {
                "The INS number does not match the identity traits (sex, year or month of birth) or the birth date on record."
            }
            OidcNotConfigured => {
                "Login with Pro Santé Connect is not configured on this service. Log in with your password."
            }
            OidcUnavailable => {
                "The identity provider does not answer. Try again in a few minutes, or log in with your password."
            }
            OidcFailed => {
                "The login could not be verified (expired or already used). Start the login again."
            }
            OidcAcr => "The authentication level is too low: use your CPS card or the e-CPS app.",
            OidcUnknownRpps => {
                "No account on this service matches your RPPS number. Ask the administrator to register it."
            }
            PasswordLoginDisabled => "Password login is turned off: use Pro Santé Connect.",
            Unauthenticated => "Please log in.",
            BadCredentials => "Wrong e-mail address or password.",
            NotFound => "Not found.",
            InvalidInput => "Invalid data: check the form.",
            Conflict => "This operation is not possible in the current state.",
            ScopeMissing => "This API key does not allow this operation.",
            IdempotencyKeyReused => {
                "This idempotency key was already used for a different request: use a new one."
            }
            CrossSiteRequest => {
                "Request refused: it does not come from the telesoin page. Open the dashboard from its usual address."
            }
            CsrfTokenInvalid => {
                "Request refused: your page session has expired. Reload the page or log in again."
            }
            LoginThrottled => "Too many login attempts. Wait a few minutes before trying again.",
            ContactMissing => {
                "This patient has no e-mail address or mobile number for the chosen channel: add them to the patient's file."
            }
            ChannelNotConfigured => {
                "Sending by this channel is not configured on this server (SMTP relay or SMS gateway): copy the link and send it yourself."
            }
        }
    }

    /// The in-person rule a refusal is about, if any: every such refusal names it.
    pub fn rule(self) -> Option<InPersonRule> {
        match self {
            RefusalCode::InPersonMissing(r) => Some(r),
            RefusalCode::InPersonBilanMissing
            | RefusalCode::InPersonStale
            | RefusalCode::OutOfTerritory => Some(InPersonRule::Convention),
            _ => None,
        }
    }
}

/// Everything admission looks at, gathered by the caller.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionInput<'a> {
    pub now: DateTime<Utc>,
    pub role: Role,
    pub session: &'a Session,
    pub patient: &'a Patient,
    /// In-person visits between this session's kiné and patient.
    pub visits: &'a [InPersonVisit],
    pub consents: &'a [Consent],
    pub rule: InPersonRule,
    /// What the joining device attested, if anything.
    pub attested: Option<Companion>,
    /// An HN session's price to accept (positive cents), and the price accepted, if any
    /// ([`price_accepted`]).
    pub price: PriceAcceptance,
    /// The kiné of the session is connected and admitted.
    pub kine_present: bool,
    /// The kiné clicked "admit" for this participant.
    pub admitted_by_kine: bool,
}

/// The admission decision for one participant at `input.now`.
pub fn decide(input: &AdmissionInput<'_>) -> Decision {
    if let Err(code) = room_open(input.role, input.session, input.now) {
        return Decision::Refuse(code);
    }
    if input.role == Role::Kine {
        return Decision::Admit;
    }
    if let Err(code) = in_person(input.rule, input.visits, input.session) {
        return Decision::Refuse(code);
    }
    if let Err(code) = price_accepted(input.price) {
        return Decision::Refuse(code);
    }
    match consent(input.consents, input.now) {
        ConsentState::InForce => {}
        ConsentState::Withdrawn => return Decision::Refuse(RefusalCode::ConsentWithdrawn),
        ConsentState::None if input.session.patient_consent_on_join => {
            return Decision::Wait(WaitReason::ConsentRequired);
        }
        ConsentState::None => return Decision::Refuse(RefusalCode::ConsentMissing),
    }
    if input.role == Role::Patient
        && let Some(needed) = required_companion(input.patient, input.session)
        && input.attested != Some(needed)
    {
        return Decision::NeedsAttestation(needed);
    }
    if !input.kine_present {
        return Decision::Wait(WaitReason::KineAbsent);
    }
    if input.admitted_by_kine || input.session.auto_admit {
        Decision::Admit
    } else {
        Decision::Wait(WaitReason::AwaitingAdmission)
    }
}

/// The price side of an admission: what there is to accept, and what was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PriceAcceptance {
    /// The HN price the join page shows, when the session is hors nomenclature with a price
    /// above zero; `None` for a reimbursable session (or a free one): nothing to accept.
    pub to_accept_cents: Option<i64>,
    /// The price the patient's side accepted on the join page, if it did.
    pub accepted_cents: Option<i64>,
}

/// An HN session's price is shown to the patient before the call and accepted, traced like a
/// consent, before anyone of the patient's side is admitted. An acceptance of another price
/// (the kiné changed it since) does not count: the new price is shown again.
pub fn price_accepted(p: PriceAcceptance) -> Result<(), RefusalCode> {
    match p.to_accept_cents {
        Some(price) if price > 0 && p.accepted_cents != Some(price) => {
            Err(RefusalCode::PriceAcceptanceRequired)
        }
        _ => Ok(()),
    }
}

/// Is the session open to joins at `now`?
pub fn session_open(session: &Session, now: DateTime<Utc>) -> Result<(), RefusalCode> {
    match session.status {
        SessionStatus::Cancelled => return Err(RefusalCode::SessionCancelled),
        SessionStatus::Ended => return Err(RefusalCode::SessionEnded),
        SessionStatus::Scheduled | SessionStatus::Live => {}
    }
    if now < session.window_start {
        Err(RefusalCode::TooEarly)
    } else if now >= session.window_end {
        Err(RefusalCode::TooLate)
    } else {
        Ok(())
    }
}

/// Is the session's room open to `role` at `now`? The kiné may open it at any time before the
/// window closes, hours early included (to get ready, or to check the camera), and leave and
/// come back; everybody else only inside the window ([`session_open`]).
pub fn room_open(role: Role, session: &Session, now: DateTime<Utc>) -> Result<(), RefusalCode> {
    match session_open(session, now) {
        Err(RefusalCode::TooEarly) if role == Role::Kine => Ok(()),
        other => other,
    }
}

/// Prior in-person care with this kiné, as of the session day, under `rule`.
/// A visit on the session day itself counts (the patient came to the cabinet that morning).
pub fn in_person(
    rule: InPersonRule,
    visits: &[InPersonVisit],
    session: &Session,
) -> Result<(), RefusalCode> {
    in_person_on(rule, visits, session.day())
}

/// [`in_person`] for a session on `day` (the session day in France), when there is no
/// [`Session`] value yet, e.g. while a kiné schedules it.
pub fn in_person_on(
    rule: InPersonRule,
    visits: &[InPersonVisit],
    day: NaiveDate,
) -> Result<(), RefusalCode> {
    let past = || visits.iter().filter(|v| v.date <= day);
    match rule {
        InPersonRule::Arrete2021 => {
            // A session with this kiné: a hospital bilan by someone else does not count.
            if past().any(|v| v.kind != VisitKind::HospitalBilan) {
                Ok(())
            } else {
                Err(RefusalCode::InPersonMissing(rule))
            }
        }
        InPersonRule::Convention => {
            if past().next().is_none() {
                return Err(RefusalCode::InPersonMissing(rule));
            }
            // The first session (initial bilan, BDK) is in person: a bilan by this kiné, or
            // the hospital kiné's before discharge.
            let bilan =
                |v: &&InPersonVisit| matches!(v.kind, VisitKind::Bilan | VisitKind::HospitalBilan);
            if !past().any(|v| bilan(&v)) {
                return Err(RefusalCode::InPersonBilanMissing);
            }
            // "Within the last 12 months": the same calendar day a year before still counts.
            let since = day.checked_sub_months(Months::new(12)).unwrap_or(day);
            if past().any(|v| v.date >= since) {
                Ok(())
            } else {
                Err(RefusalCode::InPersonStale)
            }
        }
    }
}

enum ConsentState {
    InForce,
    Withdrawn,
    None,
}

/// The latest consent decides: a withdrawal is respected until a new consent is recorded.
fn consent(consents: &[Consent], now: DateTime<Utc>) -> ConsentState {
    let latest = consents
        .iter()
        .filter(|c| c.recorded_at <= now)
        .max_by_key(|c| c.recorded_at);
    match latest {
        Some(c) if c.in_force_at(now) => ConsentState::InForce,
        Some(_) => ConsentState::Withdrawn,
        None => ConsentState::None,
    }
}

/// Who must be attested present next to the patient for this session, if anyone.
/// A minor (under 18 on the session day, in France) needs a parent or authorised adult, who also
/// serves as aidant; an adult with loss of autonomy needs an aidant.
pub fn required_companion(patient: &Patient, session: &Session) -> Option<Companion> {
    if patient.age_on(session.day()) < 18 {
        Some(Companion::Parent)
    } else if patient.loss_of_autonomy {
        Some(Companion::Aidant)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
