//! The routes of the made-up city: paths, stops, colors and fleet sizes.

/// A fixed route: its path as `(lat, lon)` points, its stops as indices into the path, and how
/// many vehicles run on it. A looped route's path ends where it starts.
pub(super) struct Route {
    pub(super) id: &'static str,
    pub(super) name: &'static str,
    pub(super) color: &'static str,
    pub(super) looped: bool,
    pub(super) path: &'static [(f64, f64)],
    pub(super) stops: &'static [(usize, &'static str)],
    pub(super) vehicles: usize,
}

/// The routes. Ends of back-and-forth routes are stops, so a vehicle turning there always has a
/// stop ahead.
pub(super) const ROUTES: [Route; 4] = [
    Route {
        id: "12",
        name: "Harbor – University",
        color: "#e4572e",
        looped: false,
        path: &[
            (52.3822, 4.9105),
            (52.3805, 4.9052),
            (52.3791, 4.9003),
            (52.3760, 4.8985),
            (52.3731, 4.8962),
            (52.3702, 4.8952),
            (52.3668, 4.8921),
            (52.3627, 4.8884),
            (52.3581, 4.8843),
            (52.3543, 4.8812),
        ],
        stops: &[
            (0, "Harbor"),
            (2, "Central Station"),
            (4, "Market Square"),
            (6, "Flower Bridge"),
            (7, "Museum Park"),
            (9, "University"),
        ],
        vehicles: 4,
    },
    Route {
        id: "5",
        name: "Canal Ring",
        color: "#2e86ab",
        looped: true,
        path: &[
            (52.3775, 4.8850),
            (52.3790, 4.8930),
            (52.3765, 4.9050),
            (52.3700, 4.9110),
            (52.3630, 4.9080),
            (52.3590, 4.8990),
            (52.3600, 4.8860),
            (52.3655, 4.8790),
            (52.3720, 4.8790),
            (52.3775, 4.8850),
        ],
        stops: &[
            (0, "Canal Gate"),
            (2, "Old Market"),
            (3, "Zoo Gardens"),
            (5, "Music Hall"),
            (7, "Theatre Square"),
        ],
        vehicles: 5,
    },
    Route {
        id: "7",
        name: "Westpark – Eastgate",
        color: "#76b041",
        looped: false,
        path: &[
            (52.3720, 4.8480),
            (52.3715, 4.8580),
            (52.3712, 4.8680),
            (52.3718, 4.8790),
            (52.3712, 4.8961),
            (52.3690, 4.9120),
            (52.3660, 4.9260),
            (52.3625, 4.9400),
        ],
        stops: &[
            (0, "Westpark"),
            (2, "Mill Street"),
            (3, "Prince Canal"),
            (4, "Palace Square"),
            (5, "Stone Bridge"),
            (7, "Eastgate"),
        ],
        vehicles: 3,
    },
    Route {
        id: "21",
        name: "Lakeside – North Docks",
        color: "#f2a900",
        looped: false,
        path: &[
            (52.3560, 4.8560),
            (52.3610, 4.8640),
            (52.3680, 4.8700),
            (52.3760, 4.8720),
            (52.3840, 4.8760),
            (52.3900, 4.8850),
            (52.3950, 4.8960),
        ],
        stops: &[(0, "Lakeside"), (2, "Rose Park"), (4, "Ferry Quay"), (6, "North Docks")],
        vehicles: 3,
    },
];
