"""pixelpilot.vlm"""
