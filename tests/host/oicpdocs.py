"""OICP request bodies from the spec examples that more than one test sends."""


# S06 "eRoamingPushEvseData" request (CC BY-SA 4.0, Hubject), trimmed of optional fields.
EVSE_DATA = {"ActionType": "fullLoad", "OperatorEvseData": {
    "OperatorID": "DE*ABC", "OperatorName": "ABC technologies", "EvseDataRecord": [{
        "Accessibility": "Restricted access", "AccessibilityLocation": "ParkingGarage",
        "AdditionalInfo": [{"lang": "en", "value": "This charging station is for testing"}],
        "Address": {"City": "Berlin", "Country": "DEU", "Floor": "6OG", "HouseNum": "22",
                    "PostalCode": "10829", "Region": "Berlin", "Street": "EUREF CAMPUS",
                    "TimeZone": "UTC+01:00", "ParkingFacility": True, "ParkingSpot": "E36"},
        "AuthenticationModes": ["NFC RFID Classic", "REMOTE"],
        "CalibrationLawDataAvailability": "Local",
        "ChargingFacilities": [{"Amperage": 32, "Power": 22, "PowerType": "AC_3_PHASE",
                                "Voltage": 480, "ChargingModes": ["Mode_4"]}],
        "ChargingPoolID": "DE*ABC*P1234TEST*1", "ChargingStationID": "TEST 1",
        "ChargingStationNames": [{"lang": "en", "value": "ABC Charging Station Test"},
                                 {"lang": "de", "value": "ABC Testladestation"}],
        "ClearinghouseID": "TEST ID", "DynamicInfoAvailable": "true", "DynamicPowerLevel": True,
        "EvseID": "DE*XYZ*ETEST1",
        "EnergySource": [{"Energy": "Solar", "Percentage": 85}],
        "EnvironmentalImpact": {"CO2Emission": 30.3},
        "GeoCoordinates": {"Google": {"Coordinates": "52.480495 13.356465"}},
        "HotlinePhoneNumber": "+49123123123123", "HubOperatorID": "DE*ABC",
        "IsHubjectCompatible": True, "IsOpen24Hours": False, "MaxCapacity": 50,
        "OpeningTimes": [{"Period": [{"begin": "09:00", "end": "18:00"}], "on": "Everyday"}],
        "PaymentOptions": ["No Payment"], "Plugs": ["Type 2 Outlet"], "RenewableEnergy": True,
        "ValueAddedServices": ["Reservation"], "deltaType": "insert",
        "lastUpdate": "2018-01-23T14:04:29.377Z"}]}}
