"""The wire contract of the Smart Zone: message types, topics, decoding and the MQTT adapter."""
