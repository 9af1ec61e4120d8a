//! The NGAP kiné acts in force since 22 February 2024 (Titre XIV, chapitre II and following),
//! with their coefficient, their in-person key letter, and whether télésoin allows them.
//!
//! # Sources
//! - UNCAM decision of 14 December 2023 (JORF n° 0032 of 8 February 2024), modifying the NGAP
//!   Titre XIV in application of avenant 7: article 3 creates NGAP annex 2 "Lettres clés",
//!   deletes AMS and AMC, renames AMK "Actes divers pratiqués par le masseur-kinésithérapeute",
//!   adds "TMK - Acte de télésoin pratiqué par le masseur-kinésithérapeute" and the act letters
//!   APM (amputations), ARL (affections respiratoires, maxillo-faciales et ORL), DRA (déviation
//!   du rachis), NMI (affections neuromusculaires ou rhumatismales inflammatoires), PLL (soins
//!   palliatifs), among others. Read on juriblio.fr (decision 183319707, articles 1 and 3).
//! - Cofidoc, "NGAP kiné" (2024): since 22 February 2024, 20 new key letters; AMK stays for the
//!   bilans and the balnéothérapie supplements; point value 2,21 EUR (mainland), 2,43 EUR (DROM).
//! - Avenant 7 (arrêté du 21 août 2023) and ameli.fr: every kiné act may be done in télésoin
//!   except those needing direct contact (urgent respiratory airway clearance) or equipment the
//!   patient lacks (balnéothérapie); télésoin is billed TMK x the in-person coefficient (FFMKR
//!   Paris example: post-PTH rehabilitation, AMS 7,5 in person, TMK 7,5 in télésoin).
//! - The pre-2024 NGAP Titre XIV text (chapitre II articles, e.g. "AMK 8: rééducation des
//!   maladies respiratoires avec désencombrement urgent").
//!
//! # What is uncertain
//! The search tools gave the decision's letters and structure but not its full tables. So:
//! - the list holds 51 lines where the new nomenclature has about 80 (some articles split by
//!   territory or stage are one line here);
//! - coefficients are those of the pre-2024 text or of seed 002 where the 2024 value could not
//!   be read; article 1 of the decision revalued orthopaedic and rheumatological acts, so those
//!   may differ. `verified: true` marks a line whose coefficient and letter were read in a
//!   source above; every other line is `verified: false`;
//! - `in_person_letter: None` where the letter of the act (among the 20 of annex 2) was not read;
//! - the télésoin exclusions follow the convention's two criteria (direct contact, equipment);
//!   the lines excluded beyond its two examples (manual lymphatic drainage, multilayer bandage,
//!   perineal rehabilitation under manual control) are our reading of "direct contact".
//!
//! The structure (dated catalogue, stable code, coefficient in tenths, letter, télésoin flag,
//! verification flag) is what the rest of the service relies on; correcting a line is a data
//! change here, with a table test.

use super::NotRemote::{DirectContact, Equipment};
use super::Remote::{Allowed, NotAllowed};
use super::{Act, Catalogue, act};

const AMK: Option<&str> = Some("AMK");
const APM: Option<&str> = Some("APM");
const ARL: Option<&str> = Some("ARL");
const DRA: Option<&str> = Some("DRA");
const NMI: Option<&str> = Some("NMI");
const PLL: Option<&str> = Some("PLL");
const UNREAD: Option<&str> = None;

pub fn catalogue() -> Catalogue {
    Catalogue {
        id: "ngap_2024",
        effective_from: crate::tariff::avenant_7_effective(),
        source: "NGAP Titre XIV as modified by the UNCAM decision of 14 December 2023 (JORF 8 February 2024), avenant 7",
        acts: ACTS,
    }
}

#[rustfmt::skip]
pub const ACTS: &[Act] = &[
    // Orthopaedic and rheumatological affections.
    act("MEMBRE", "Rééducation d'un membre et de sa racine", 75, UNREAD, Allowed, false),
    act("MULTI_MEMBRES", "Rééducation de tout ou partie de plusieurs membres, ou du tronc et d'un ou plusieurs membres", 95, UNREAD, Allowed, false),
    act("RACHIS", "Rééducation du rachis et/ou des ceintures", 75, UNREAD, Allowed, false),
    act("PROTHESE_HANCHE", "Rééducation après arthroplastie de la hanche", 75, UNREAD, Allowed, true),
    act("PROTHESE_GENOU", "Rééducation après arthroplastie du genou", 75, UNREAD, Allowed, false),
    act("LIGAMENTOPLASTIE_GENOU", "Rééducation après ligamentoplastie du croisé antérieur du genou", 75, UNREAD, Allowed, false),
    act("MENISCECTOMIE", "Rééducation après méniscectomie isolée, totale ou subtotale, par arthroscopie", 75, UNREAD, Allowed, false),
    act("COIFFE_ROTATEURS", "Rééducation de l'épaule : tendinopathie de la coiffe des rotateurs, opérée ou non", 75, UNREAD, Allowed, false),
    act("CAPSULITE_EPAULE", "Rééducation de la capsulite rétractile de l'épaule", 75, UNREAD, Allowed, false),
    act("FRACTURE_HUMERUS", "Rééducation après fracture de l'extrémité proximale de l'humérus", 75, UNREAD, Allowed, false),
    act("FRACTURE_POIGNET", "Rééducation après fracture de l'extrémité distale des deux os de l'avant-bras", 75, UNREAD, Allowed, false),
    act("CANAL_CARPIEN", "Rééducation après libération du nerf médian au canal carpien", 75, UNREAD, Allowed, false),
    act("ENTORSE_CHEVILLE", "Rééducation de l'entorse externe récente de la cheville", 75, UNREAD, Allowed, false),
    act("LOMBALGIE", "Rééducation de la lombalgie commune", 75, UNREAD, Allowed, false),
    act("CERVICAL_TRAUMA", "Rééducation après traumatisme récent du rachis cervical sans lésion neurologique", 75, UNREAD, Allowed, false),
    act("RACHIS_ENFANT", "Rééducation de l'enfant ou de l'adolescent pour déviation latérale ou sagittale du rachis", 75, DRA, Allowed, false),
    act("TORTICOLIS_NOURRISSON", "Rééducation du torticolis congénital du nourrisson", 75, UNREAD, Allowed, false),
    // Inflammatory rheumatism and neuromuscular affections (NMI).
    act("RHUMATISME_LOCAL", "Rhumatisme inflammatoire, atteinte localisée à un membre ou le tronc", 76, NMI, Allowed, false),
    act("RHUMATISME_MULTI", "Rhumatisme inflammatoire, atteinte de plusieurs membres, ou du tronc et d'un ou plusieurs membres", 90, NMI, Allowed, false),
    act("SPONDYLARTHRITE", "Rééducation de la spondyloarthrite", 90, NMI, Allowed, false),
    act("NEUROMUSCULAIRE", "Rééducation des affections neuromusculaires (myopathies, neuropathies périphériques)", 100, NMI, Allowed, false),
    // Amputations (APM).
    act("AMPUTATION_MEMBRE", "Rééducation d'un patient amputé, appareillé ou non : amputation de tout ou partie d'un membre", 90, APM, Allowed, false),
    act("AMPUTATION_MULTI", "Rééducation d'un patient amputé, appareillé ou non : amputation de tout ou partie de plusieurs membres", 120, APM, Allowed, false),
    // Neurological affections.
    act("HEMIPLEGIE", "Rééducation de l'hémiplégie", 90, UNREAD, Allowed, false),
    act("PARAPLEGIE", "Rééducation de la paraplégie et de la tétraplégie", 110, UNREAD, Allowed, false),
    act("NEURO_UN_MEMBRE", "Affections neurologiques stables ou évolutives (hors hémiplégie et paraplégie), un membre et sa racine", 83, UNREAD, Allowed, false),
    act("NEURO_MULTI", "Affections neurologiques, deux membres ou plus, ou un membre et tout ou partie du tronc et de la face", 100, UNREAD, Allowed, false),
    act("PARALYSIE_CEREBRALE", "Rééducation de l'enfant atteint de paralysie cérébrale ou de polyhandicap", 100, UNREAD, Allowed, false),
    act("PARKINSON", "Rééducation de la maladie de Parkinson et des syndromes parkinsoniens", 100, UNREAD, Allowed, false),
    act("DEAMBULATION_AGE", "Rééducation de la déambulation du sujet âgé (maintien de l'autonomie)", 60, UNREAD, Allowed, false),
    act("PREVENTION_CHUTE", "Rééducation après chute chez la personne âgée", 80, UNREAD, Allowed, false),
    // Respiratory, maxillo-facial and ENT affections (ARL).
    act("RESPIRATOIRE", "Maladies respiratoires obstructives, restrictives ou mixtes (hors urgence)", 83, ARL, Allowed, false),
    act("DESENCOMBREMENT_URGENT", "Rééducation des maladies respiratoires avec désencombrement urgent (bronchiolite, poussée aiguë)", 80, ARL, NotAllowed(DirectContact), true),
    act("MUCOVISCIDOSE", "Rééducation respiratoire de la mucoviscidose", 100, ARL, Allowed, false),
    act("RESPIRATOIRE_OPERATOIRE", "Rééducation respiratoire pré- ou post-opératoire", 83, ARL, Allowed, false),
    act("MAXILLO_FACIALE", "Rééducation maxillo-faciale en dehors de la paralysie faciale", 76, ARL, Allowed, false),
    act("PARALYSIE_FACIALE", "Rééducation de la paralysie faciale", 76, ARL, Allowed, false),
    act("VESTIBULAIRE", "Rééducation vestibulaire et des troubles de l'équilibre", 80, ARL, Allowed, false),
    // Abdominal and pelvic.
    act("ABDO_OPERATOIRE", "Rééducation abdominale pré- ou post-opératoire", 76, UNREAD, Allowed, false),
    act("ABDO_POST_PARTUM", "Rééducation abdominale du post-partum", 76, UNREAD, Allowed, false),
    act("PERINEE", "Rééducation périnéale active sous contrôle manuel et/ou électrostimulation et/ou biofeedback", 85, UNREAD, NotAllowed(DirectContact), false),
    // Vascular and lymphatic.
    act("INSUFFISANCE_VEINEUSE", "Insuffisance veineuse des membres inférieurs (retentissement articulaire et/ou troubles trophiques)", 76, UNREAD, Allowed, false),
    act("ARTERIOPATHIE", "Artériopathie des membres inférieurs", 76, UNREAD, Allowed, false),
    act("DRAINAGE_LYMPHATIQUE_MEMBRE", "Drainage lymphatique manuel d'un membre", 70, UNREAD, NotAllowed(DirectContact), false),
    act("DRAINAGE_LYMPHATIQUE_MULTI", "Drainage lymphatique manuel de plusieurs membres, ou d'un membre et de la racine", 90, UNREAD, NotAllowed(DirectContact), false),
    act("BANDAGE_MULTICOUCHE", "Pose de bandage multicouche pour lymphœdème d'un membre", 30, UNREAD, NotAllowed(DirectContact), false),
    // Other.
    act("CARDIO_VASCULAIRE", "Réadaptation à l'effort dans les pathologies cardio-vasculaires", 100, UNREAD, Allowed, false),
    act("CANCER_SEIN", "Rééducation après traitement d'un cancer du sein", 90, UNREAD, Allowed, false),
    act("BRULES", "Rééducation des brûlés", 90, UNREAD, Allowed, false),
    act("PALLIATIFS", "Prise en charge kinésithérapique d'un patient en soins palliatifs", 120, PLL, Allowed, false),
    act("BALNEOTHERAPIE", "Supplément pour rééducation en balnéothérapie (piscine ou bassin)", 10, AMK, NotAllowed(Equipment), false),
];
