"""pixelpilot.train"""
