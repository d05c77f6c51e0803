"""The simulated Smart Zone fleet: zone geometry, vehicles and riders, and the runner that publishes them."""
