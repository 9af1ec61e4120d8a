// Wire types of the signaling protocol and the REST API, as JSDoc typedefs.
// The source of truth is crates/telesoin-proto (signal.rs, rest.rs, refusal.rs); keep these in step.

/** @typedef {'kine' | 'patient' | 'companion'} Role */
/** @typedef {'kine_absent' | 'awaiting_admission' | 'consent_required' | 'attestation_parent' | 'attestation_aidant'} WaitReason */

/**
 * @typedef {object} Refusal
 * @property {string} code stable, snake_case
 * @property {string} message_fr
 * @property {string} message_en
 * @property {unknown} [details]
 */

/**
 * @typedef {object} SessionInfo
 * @property {string} session
 * @property {string} kine_name
 * @property {string} starts_at RFC 3339
 * @property {string} act_code
 * @property {string} act_label
 * @property {'reimbursable' | 'hn' | string} billing_class
 * @property {string} consent_text_version
 * @property {boolean} [minor] the patient is a minor: the legal representative consents, named
 */

/**
 * @typedef {object} PeerInfo
 * @property {string} participant
 * @property {Role} role
 * @property {boolean} admitted
 */

/**
 * @typedef {{type: 'welcome', protocol: number, participant: string, role: Role, session: SessionInfo, ice_servers: RTCIceServer[], ice_transport_policy?: 'all' | 'relay', peers: PeerInfo[], resumed: boolean, heartbeat_seconds?: number}
 *   | {type: 'waiting', reason: WaitReason}
 *   | {type: 'admitted', peers: PeerInfo[]}
 *   | ({type: 'refused'} & Refusal)
 *   | {type: 'peer_joined', peer: PeerInfo}
 *   | {type: 'lobby_waiting', participant: string, role: Role, reason: WaitReason}
 *   | {type: 'peer_left', participant: string, reconnecting: boolean}
 *   | {type: 'offer' | 'answer', from: string, data: RTCSessionDescriptionInit}
 *   | {type: 'candidate', from: string, data: RTCIceCandidateInit}
 *   | {type: 'ended', billable_seconds: number, reason: string}
 *   | {type: 'replaced'}
 *   | ({type: 'error'} & Refusal)
 *   | {type: 'pong'}} ServerMsg
 */

/**
 * @typedef {{type: 'join', token: string, device: {kind: string}, media_lost_ago_ms?: number}
 *   | {type: 'attest', companion: 'parent' | 'aidant', name: string, relation: string}
 *   | {type: 'consent', text_version: string, representative_name?: string, representative_relation?: string}
 *   | {type: 'admit', participant: string}
 *   | {type: 'offer' | 'answer', to: string, data: RTCSessionDescriptionInit}
 *   | {type: 'candidate', to: string, data: RTCIceCandidateInit}
 *   | {type: 'media', state: 'connected' | 'disconnected', video_in?: boolean, video_out?: boolean, incident?: string}
 *   | {type: 'hangup', ago_ms?: number}
 *   | {type: 'leave', ago_ms?: number}
 *   | {type: 'ping'}} ClientMsg
 */

/**
 * @typedef {object} Kine
 * @property {string} id
 * @property {string} rpps
 * @property {string} name
 * @property {string} email
 */

/**
 * @typedef {object} Act
 * @property {string} code
 * @property {string} label
 * @property {number} amk_coefficient
 * @property {string | null} [in_person_letter]
 * @property {string} telesoin_letter TMK since 2024-02-22
 * @property {boolean} telesoin_allowed
 * @property {string | null} [not_remote] direct_contact or equipment
 * @property {string} catalogue
 */

/**
 * @typedef {object} Patient
 * @property {string} id
 * @property {string} display_name
 * @property {string} birth_date YYYY-MM-DD
 * @property {boolean} loss_of_autonomy
 * @property {string | null} gp_contact
 * @property {string} created_at
 */

/** @typedef {{id: string, patient: string, date: string, kind: 'bilan' | 'session' | string}} Visit */
/** @typedef {{id: string, patient: string, recorded_by: string, method: string, text_version: string, recorded_at: string, withdrawn_at: string | null, representative_name?: string | null, representative_relation?: string | null}} Consent */
/** @typedef {{id: string, patient: string, date: string}} Prescription */
/**
 * The patient's INS and its reference traits; documents carry it only when `qualifiee`.
 * @typedef {object} PatientIns
 * @property {'provisoire' | 'recuperee' | 'validee' | 'qualifiee'} status
 * @property {string | null} [matricule]
 * @property {string | null} [oid]
 * @property {string} birth_names
 * @property {string} first_names
 * @property {string} birth_date
 * @property {'M' | 'F' | 'I'} sex
 * @property {string} birth_place
 */
/** @typedef {{patient: Patient, visits: Visit[], consents: Consent[], prescriptions: Prescription[], ins?: PatientIns | null}} PatientFile */
/** @typedef {{password: boolean, oidc: {label: string, start: string} | null, error: Refusal | null}} LoginOptions */

/** @typedef {{participant: string, role: Role, admitted: boolean, connected: boolean, media: boolean}} LivePresence */

/**
 * @typedef {object} Session
 * @property {string} id
 * @property {string} patient
 * @property {string} patient_name
 * @property {string} starts_at
 * @property {string} window_start
 * @property {string} window_end
 * @property {string} act_code
 * @property {string} act_label
 * @property {number} amk_coefficient
 * @property {string | null} [key_letter] the letter pricing the session on its day
 * @property {string | null} [coefficient]
 * @property {number | null} [key_letter_value_cents]
 * @property {number | null} [amount_cents]
 * @property {'scheduled' | 'live' | 'ended' | 'cancelled' | string} status
 * @property {'open' | 'held' | 'not_held' | string} [outcome] not_held: "non réalisée"
 * @property {boolean} auto_admit
 * @property {boolean} patient_consent_on_join
 * @property {string} billing_class
 * @property {BillingReason | null} [billing_reason] why reimbursable or HN, in plain words
 * @property {LivePresence[]} [live]
 */

/** @typedef {'prescription_and_in_person' | 'direct_access' | 'no_in_person_care' | 'no_valid_prescription' | 'direct_access_without_protocol' | string} BillingReasonCode */
/** @typedef {{code: BillingReasonCode, message_fr: string, message_en: string}} BillingReason */
/** @typedef {'acute_low_back_pain' | 'ankle_sprain'} DirectAccess */

/** @typedef {{cooperation_protocol: boolean, hn_price_cents: number, practice_departement?: string | null}} Settings */
/** @typedef {{version: number, text: string, written_at: string}} ReportVersion */
/** @typedef {{session: string, versions: ReportVersion[]}} Report versions oldest first; the last is in force */

/**
 * The share of a kiné's sessions done remotely over a period (the convention caps it).
 * @typedef {object} Share
 * @property {string} from YYYY-MM-DD
 * @property {string} to YYYY-MM-DD
 * @property {number} remote_sessions
 * @property {number} total_sessions
 * @property {number} ratio in [0, 1]
 * @property {number} cap_percent
 * @property {boolean} over_cap
 * @property {boolean} [next_exceeds] one more remote session would exceed the cap
 */

/**
 * @typedef {object} Link
 * @property {string} participant
 * @property {Role} role
 * @property {string} jti
 * @property {string} url https://HOST/j#TOKEN
 * @property {string} token
 * @property {string} [short_url] https://HOST/j#CODE (patients and companions)
 * @property {string} not_before
 * @property {string} expires_at
 */

/** @typedef {{seq: number, at: string, participant: string | null, role: Role | null, kind: string, detail?: string | null}} SessionEvent */

/**
 * @typedef {object} SessionRecord
 * @property {string} session
 * @property {string} status
 * @property {'open' | 'held' | 'not_held' | string} [outcome]
 * @property {string} kine_rpps
 * @property {string} act_code
 * @property {number} amk_coefficient
 * @property {string | null} [key_letter]
 * @property {string | null} [coefficient]
 * @property {number | null} [key_letter_value_cents]
 * @property {number | null} [amount_cents]
 * @property {string} billing_class
 * @property {string | null} started_at
 * @property {string | null} ended_at
 * @property {number | null} billable_seconds
 * @property {number | null} [provisional_seconds]
 * @property {string | null} finalized_at
 * @property {string} [consent] who consented, in words (a minor's named legal representative)
 * @property {{companion: string, name: string, relation: string, attested_at: string, words: string}[]} [attestations] companions attested present
 * @property {string} [price_accepted_at] HN: when the price shown on the join page was accepted
 * @property {SessionEvent[]} incidents
 * @property {SessionEvent[]} events
 */

export {};
