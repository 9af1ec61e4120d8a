//! NGAP acts billable in télésoin by a kiné (seed 002), with their AMK coefficient.
//!
//! The money value of the key letter is not here: it changes over time and is configuration
//! (see [`crate::tariff`]).

/// One act of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Act {
    /// Our stable code for the act (the NGAP has no short code for these lines).
    pub code: &'static str,
    /// The NGAP wording, in French.
    pub label: &'static str,
    /// The coefficient as a float, kept for the wire types that already show it. Never compute
    /// money with it: use [`Act::coefficient_tenths`].
    pub amk_coefficient: f64,
    /// The same coefficient, exactly, in tenths (7.5 -> 75): every NGAP coefficient of the
    /// catalogue has at most one decimal, so money is computed in integers.
    pub coefficient_tenths: u32,
}

/// The acts a kiné may perform in télésoin.
pub const CATALOGUE: &[Act] = &[
    Act {
        code: "MEMBRE",
        label: "Rééducation d'un membre et de sa racine",
        amk_coefficient: 7.5,
        coefficient_tenths: 75,
    },
    Act {
        code: "MULTI_MEMBRES",
        label: "Rééducation de tout ou partie de plusieurs membres, ou du tronc et d'un ou plusieurs membres",
        amk_coefficient: 9.5,
        coefficient_tenths: 95,
    },
    Act {
        code: "RACHIS",
        label: "Rééducation du rachis et/ou des ceintures",
        amk_coefficient: 7.5,
        coefficient_tenths: 75,
    },
    Act {
        code: "RACHIS_ENFANT",
        label: "Rééducation de l'enfant ou de l'adolescent pour déviation latérale ou sagittale du rachis",
        amk_coefficient: 7.5,
        coefficient_tenths: 75,
    },
    Act {
        code: "RHUMATISME_LOCAL",
        label: "Rhumatisme inflammatoire, atteinte localisée à un membre ou le tronc",
        amk_coefficient: 7.6,
        coefficient_tenths: 76,
    },
    Act {
        code: "RHUMATISME_MULTI",
        label: "Rhumatisme inflammatoire, atteinte de plusieurs membres, ou du tronc et d'un ou plusieurs membres",
        amk_coefficient: 9.0,
        coefficient_tenths: 90,
    },
    Act {
        code: "ABDO_OPERATOIRE",
        label: "Rééducation abdominale pré- ou post-opératoire",
        amk_coefficient: 7.6,
        coefficient_tenths: 76,
    },
    Act {
        code: "ABDO_POST_PARTUM",
        label: "Rééducation abdominale du post-partum",
        amk_coefficient: 7.6,
        coefficient_tenths: 76,
    },
    Act {
        code: "MAXILLO_FACIALE",
        label: "Rééducation maxillo-faciale en dehors de la paralysie faciale",
        amk_coefficient: 7.6,
        coefficient_tenths: 76,
    },
    Act {
        code: "INSUFFISANCE_VEINEUSE",
        label: "Insuffisance veineuse des membres inférieurs (retentissement articulaire et/ou troubles trophiques)",
        amk_coefficient: 7.6,
        coefficient_tenths: 76,
    },
    Act {
        code: "ARTERIOPATHIE",
        label: "Artériopathie des membres inférieurs",
        amk_coefficient: 7.6,
        coefficient_tenths: 76,
    },
    Act {
        code: "HEMIPLEGIE",
        label: "Rééducation de l'hémiplégie",
        amk_coefficient: 9.0,
        coefficient_tenths: 90,
    },
    Act {
        code: "NEURO_UN_MEMBRE",
        label: "Affections neurologiques stables ou évolutives (hors hémiplégie et paraplégie), un membre et sa racine",
        amk_coefficient: 8.3,
        coefficient_tenths: 83,
    },
    Act {
        code: "NEURO_MULTI",
        label: "Affections neurologiques, deux membres ou plus, ou un membre et tout ou partie du tronc et de la face",
        amk_coefficient: 10.0,
        coefficient_tenths: 100,
    },
    Act {
        code: "RESPIRATOIRE",
        label: "Maladies respiratoires obstructives, restrictives ou mixtes (hors urgence)",
        amk_coefficient: 8.3,
        coefficient_tenths: 83,
    },
];

/// The act with this code, if télésoin allows it.
pub fn find(code: &str) -> Option<&'static Act> {
    CATALOGUE.iter().find(|a| a.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_matches_seed_002() {
        assert_eq!(CATALOGUE.len(), 15);
        let mut codes: Vec<_> = CATALOGUE.iter().map(|a| a.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 15, "codes are unique");
        assert_eq!(find("NEURO_MULTI").map(|a| a.amk_coefficient), Some(10.0));
        assert_eq!(find("HEMIPLEGIE").map(|a| a.amk_coefficient), Some(9.0));
        assert!(find("BALNEO").is_none());
    }

    #[test]
    fn exact_coefficient_agrees_with_the_float() {
        for act in CATALOGUE {
            assert_eq!(
                f64::from(act.coefficient_tenths) / 10.0,
                act.amk_coefficient,
                "{}",
                act.code
            );
        }
        assert_eq!(
            find("NEURO_UN_MEMBRE").map(|a| a.coefficient_tenths),
            Some(83)
        );
        assert_eq!(find("MEMBRE").map(|a| a.coefficient_tenths), Some(75));
    }
}
