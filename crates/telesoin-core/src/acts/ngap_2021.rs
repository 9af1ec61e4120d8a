//! The acts billable in télésoin by a kiné in the 2021 rule, with their AMK coefficient.
//!
//! Source: seed 002 (the table of acts allowed in télésoin under the arrêté du 3 juin 2021), as
//! distilled in `shared/domain.md`. Every line is the seed's; every act is billed in AMK.

use chrono::NaiveDate;

use super::{Act, Catalogue, Remote::Allowed, act};

const AMK: Option<&str> = Some("AMK");

pub fn catalogue() -> Catalogue {
    Catalogue {
        id: "ngap_2021",
        // The arrêté du 3 juin 2021 (JORF of 5 June 2021) made télésoin by kinés permanent.
        effective_from: NaiveDate::from_ymd_opt(2021, 6, 5).unwrap_or(NaiveDate::MIN),
        source: "seed 002: actes de télésoin des masseurs-kinésithérapeutes, arrêté du 3 juin 2021",
        acts: ACTS,
    }
}

#[rustfmt::skip]
pub const ACTS: &[Act] = &[
    act("MEMBRE", "Rééducation d'un membre et de sa racine", 75, AMK, Allowed, true),
    act("MULTI_MEMBRES", "Rééducation de tout ou partie de plusieurs membres, ou du tronc et d'un ou plusieurs membres", 95, AMK, Allowed, true),
    act("RACHIS", "Rééducation du rachis et/ou des ceintures", 75, AMK, Allowed, true),
    act("RACHIS_ENFANT", "Rééducation de l'enfant ou de l'adolescent pour déviation latérale ou sagittale du rachis", 75, AMK, Allowed, true),
    act("RHUMATISME_LOCAL", "Rhumatisme inflammatoire, atteinte localisée à un membre ou le tronc", 76, AMK, Allowed, true),
    act("RHUMATISME_MULTI", "Rhumatisme inflammatoire, atteinte de plusieurs membres, ou du tronc et d'un ou plusieurs membres", 90, AMK, Allowed, true),
    act("ABDO_OPERATOIRE", "Rééducation abdominale pré- ou post-opératoire", 76, AMK, Allowed, true),
    act("ABDO_POST_PARTUM", "Rééducation abdominale du post-partum", 76, AMK, Allowed, true),
    act("MAXILLO_FACIALE", "Rééducation maxillo-faciale en dehors de la paralysie faciale", 76, AMK, Allowed, true),
    act("INSUFFISANCE_VEINEUSE", "Insuffisance veineuse des membres inférieurs (retentissement articulaire et/ou troubles trophiques)", 76, AMK, Allowed, true),
    act("ARTERIOPATHIE", "Artériopathie des membres inférieurs", 76, AMK, Allowed, true),
    act("HEMIPLEGIE", "Rééducation de l'hémiplégie", 90, AMK, Allowed, true),
    act("NEURO_UN_MEMBRE", "Affections neurologiques stables ou évolutives (hors hémiplégie et paraplégie), un membre et sa racine", 83, AMK, Allowed, true),
    act("NEURO_MULTI", "Affections neurologiques, deux membres ou plus, ou un membre et tout ou partie du tronc et de la face", 100, AMK, Allowed, true),
    act("RESPIRATOIRE", "Maladies respiratoires obstructives, restrictives ou mixtes (hors urgence)", 83, AMK, Allowed, true),
];
