//! Geography for the travel detector: great-circle distance between two points (haversine on
//! a spherical Earth, which is within 0.5 % of the ellipsoid — far finer than IP geolocation).

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in km between (lat, lon) points given in degrees.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let dla = la2 - la1;
    let dlo = lo2 - lo1;
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // Amsterdam – Sydney ≈ 16,640 km; London – Paris ≈ 344 km (published great-circle figures).
        let ams = (52.3676, 4.9041);
        let syd = (-33.8688, 151.2093);
        let lon = (51.5074, -0.1278);
        let par = (48.8566, 2.3522);
        let d = distance_km(ams, syd);
        assert!((d - 16_640.0).abs() < 60.0, "{d}");
        let d = distance_km(lon, par);
        assert!((d - 344.0).abs() < 3.0, "{d}");
        assert_eq!(distance_km(ams, ams), 0.0);
        // Antipodes: half the circumference, no NaN from rounding.
        let d = distance_km((0.0, 0.0), (0.0, 180.0));
        assert!(
            (d - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1.0,
            "{d}"
        );
    }
}
